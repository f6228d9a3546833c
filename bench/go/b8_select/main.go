// B8 select over 4 channels (capacity 1) with one ready; the ready one is
// refilled after each select. Prints ns per select (refill included).
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// scale: os.Args[1] is a scale factor (default 1; BENCH_QUICK=1 makes it 0.1).
func sized(n int) int {
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

func main() {
	n := sized(500000)
	c1, c2, c3, c4 := make(chan int, 1), make(chan int, 1), make(chan int, 1), make(chan int, 1)
	c3 <- 0
	step := func() (int, int) {
		select {
		case v := <-c1:
			return 1, v
		case v := <-c2:
			return 2, v
		case v := <-c3:
			return 3, v
		case v := <-c4:
			return 4, v
		}
	}
	for i := 0; i < 1000; i++ { // warm-up
		_, v := step()
		c3 <- v
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		k, v := step()
		if k != 3 {
			fmt.Fprintln(os.Stderr, "case", k, "chosen")
			os.Exit(1)
		}
		c3 <- v + 1
	}
	el := time.Since(t0)
	if v := <-c3; v != n {
		fmt.Fprintln(os.Stderr, "wrong final value", v)
		os.Exit(1)
	}
	fmt.Printf("%.1f ns/select\n", float64(el.Nanoseconds())/float64(n))
}
