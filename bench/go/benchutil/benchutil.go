// Package benchutil holds what every Go twin needs: the size scaling that
// matches bench/common.lua's sized.
package benchutil

import (
	"fmt"
	"os"
	"sort"
	"strconv"
)

// Sized scales n by the scale factor: os.Args[1] if given (default 1;
// BENCH_QUICK=1 makes it 0.1). The result is at least 1. A scale that is
// not a number exits with status 2.
func Sized(n int) int {
	s := 1.0
	if os.Getenv("BENCH_QUICK") == "1" {
		s = 0.1
	}
	if len(os.Args) > 1 {
		v, err := strconv.ParseFloat(os.Args[1], 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad scale:", os.Args[1])
			os.Exit(2)
		}
		s = v
	}
	m := int(float64(n)*s + 0.5)
	if m < 1 {
		m = 1
	}
	return m
}

// Median returns the median of xs (sorting xs in place); 0 if empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
