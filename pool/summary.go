package pool

import (
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// Summary is GET /summary's data: each day's rollup and the range's totals.
type Summary struct {
	Days        []store.DayRollup
	Boot, Clone SummaryTask
	Tags        map[string]map[string]int // tag → value → count over the range
}

// SummaryTask is the boots or clones over a range.
type SummaryTask struct {
	Pools          map[string]store.Durations // pool → durations over the range
	All            store.Durations            // every pool over the range
	PerDay         float64                    // All.Count per day (0 without days)
	MinDay, MaxDay int                        // fewest and most in one day
}

// Summary returns the rollups from..to (see Rollups) with their totals.
func (s *Service) Summary(from, to string) (Summary, error) {
	days, err := s.Rollups(from, to)
	if err != nil {
		return Summary{}, err
	}
	return Summary{
		Days:  days,
		Boot:  summarize(days, func(d store.DayRollup) map[string]store.Durations { return d.Boot }),
		Clone: summarize(days, func(d store.DayRollup) map[string]store.Durations { return d.Clone }),
		Tags:  SumTags(days),
	}, nil
}

func summarize(days []store.DayRollup, get func(store.DayRollup) map[string]store.Durations) SummaryTask {
	t := SummaryTask{Pools: map[string]store.Durations{}}
	for i, d := range days {
		for p, v := range get(d) {
			t.Pools[p] = t.Pools[p].Add(v)
		}
		n := MergeDurations(get(d)).Count
		if i == 0 || n < t.MinDay {
			t.MinDay = n
		}
		t.MaxDay = max(t.MaxDay, n)
	}
	t.All = MergeDurations(t.Pools)
	if len(days) > 0 {
		t.PerDay = float64(t.All.Count) / float64(len(days))
	}
	return t
}

// SumTags adds up the tag counts of days: tag → value → count.
func SumTags(days []store.DayRollup) map[string]map[string]int {
	tags := map[string]map[string]int{}
	for _, d := range days {
		for tag, vals := range d.Tags {
			if tags[tag] == nil {
				tags[tag] = map[string]int{}
			}
			for v, n := range vals {
				tags[tag][v] += n
			}
		}
	}
	return tags
}

// MaxSummaryDays bounds a /summary range.
const MaxSummaryDays = 3660

// Rollups returns the day rollups from..to (YYYY-MM-DD, inclusive; "" =
// today). EINVALID for a bad date, to before from, from in the future or a
// range longer than MaxSummaryDays.
func (s *Service) Rollups(from, to string) ([]store.DayRollup, error) {
	today := s.Now().UTC().Format(time.DateOnly)
	if from == "" {
		from = today
	}
	if to == "" {
		to = today
	}
	f, err := parseDate(from)
	if err != nil {
		return nil, err
	}
	t, err := parseDate(to)
	if err != nil {
		return nil, err
	}
	if t.Before(f) {
		return nil, errs.Errorf(errs.EINVALID, "Date range is invalid, 'to' cannot come before 'from'.")
	} else if from > today {
		return nil, errs.Errorf(errs.EINVALID, "Date range is invalid, 'from' must be in the past.")
	} else if t.Sub(f) > Hours(24*MaxSummaryDays) {
		return nil, errs.Errorf(errs.EINVALID, "Date range is invalid, at most %d days.", MaxSummaryDays)
	}
	return s.Store.Rollups(from, to)
}

func parseDate(v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil || len(v) != len(time.DateOnly) {
		return time.Time{}, errs.Errorf(errs.EINVALID, "Invalid date format '%s', must match YYYY-MM-DD.", v)
	}
	return t, nil
}
