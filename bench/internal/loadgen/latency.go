package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in log-linear buckets: exact below 64 ns, then
// 32 buckets per power of two, so a reported quantile is at most ~3% above
// the true value (and never above the exact maximum). It is not safe for
// concurrent use: each client keeps its own and they are merged at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    int64
	min    int64
	max    int64
}

const (
	subBits     = 5 // 32 sub-buckets per power of two
	subCount    = 1 << subBits
	linearLimit = 2 * subCount // values below 64 get one bucket each
	histBuckets = linearLimit + (64-subBits-1)*subCount
)

// bucketOf returns the bucket index of v (ns, >= 0).
func bucketOf(v int64) int {
	if v < linearLimit {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1 // >= 1
	top := int(v >> shift)                       // in [32, 63]
	return linearLimit + (shift-1)*subCount + (top - subCount)
}

// bucketUpper returns the largest value that falls in bucket i.
func bucketUpper(i int) int64 {
	if i < linearLimit {
		return int64(i)
	}
	j := i - linearLimit
	shift := j/subCount + 1
	top := int64(j%subCount + subCount)
	hi := (top+1)<<shift - 1
	if hi < 0 { // the last buckets reach past int64
		return math.MaxInt64
	}
	return hi
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest observation (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest observation (exact).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the average observation (exact).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / int64(h.n))
}

// Quantile returns the q-quantile (0 < q <= 1): the upper bound of the bucket
// holding the ceil(q*n)-th smallest observation, capped at the exact maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
