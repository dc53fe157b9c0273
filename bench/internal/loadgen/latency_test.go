package loadgen

import (
	"math"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	vals := []int64{0, 1, 63, 64, 65, 127, 128, 1000, 999_999, 1_000_000, 123_456_789, math.MaxInt64 / 3, math.MaxInt64}
	for v := int64(1); v < 1<<40; v = v*3 + 1 {
		vals = append(vals, v, v-1, v+1)
	}
	for _, v := range vals {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		up := bucketUpper(i)
		if up < v {
			t.Errorf("bucketUpper(bucketOf(%d)) = %d, below the value", v, up)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Errorf("value %d also fits bucket %d (upper %d)", v, i-1, bucketUpper(i-1))
		}
		if v >= 64 && float64(up-v) > float64(v)/32 {
			t.Errorf("bucket of %d reaches %d: more than 1/32 above", v, up)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Count() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/32 {
			t.Errorf("Quantile(%v) = %v, want %v (+3%%)", c.q, got, c.want)
		}
	}
	if got, want := h.Max(), time.Second; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if got, want := h.Min(), time.Millisecond; got != want {
		t.Errorf("Min = %v, want %v", got, want)
	}
	if got, want := h.Mean(), 500500*time.Microsecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
	if got := h.Quantile(1); got > h.Max() {
		t.Errorf("Quantile(1) = %v above Max %v", got, h.Max())
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := 0; i < 500; i++ {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m != all {
		t.Fatalf("merged histogram differs: count %d/%d max %v/%v", m.Count(), all.Count(), m.Max(), all.Max())
	}
	var neg Histogram
	neg.Record(-time.Second)
	if neg.Max() != 0 || neg.Count() != 1 {
		t.Errorf("negative duration: got max %v count %d", neg.Max(), neg.Count())
	}
}
