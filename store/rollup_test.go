package store

import "testing"

func TestRollups(t *testing.T) {
	s := MustOpenStore(t) // test clock: 2024-03-10
	fillReady(t, s, "p", "", 2)
	got, err := s.Rollups("2024-03-09", "2024-03-11")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Date != "2024-03-09" || got[1].Date != "2024-03-10" || got[2].Date != "2024-03-11" {
		t.Fatalf("got %+v", got)
	}
	if got[0].Boot == nil || got[0].Clone == nil || got[0].Tags == nil || len(got[0].Boot) != 0 {
		t.Errorf("empty day: %+v, want empty maps", got[0])
	}
	if got[1].Boot["p"].Count != 2 {
		t.Errorf("boot: %+v", got[1].Boot)
	}
	for _, r := range [][2]string{{"2024-03-11", "2024-03-10"}, {"x", "2024-03-10"}, {"2024-03-10", "2024-13-01"}, {"1990-01-01", "2024-01-01"}} {
		_, err := s.Rollups(r[0], r[1])
		mustCode(t, err, EINVALID)
	}
}
