// B1 ping-pong: the main goroutine and one other goroutine pass an integer
// back and forth over two unbuffered channels. Prints ns per round trip.
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
	n := sized(100000)
	ping, pong := make(chan int), make(chan int)
	done := make(chan bool)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		done <- true
	}()
	x := 0
	for i := 0; i < 1000; i++ { // warm-up
		ping <- x
		x = <-pong
	}
	x = 0
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- x
		x = <-pong
	}
	el := time.Since(t0)
	close(ping)
	<-done
	if x != n {
		fmt.Fprintln(os.Stderr, "wrong final value", x)
		os.Exit(1)
	}
	fmt.Printf("%.1f ns/roundtrip\n", float64(el.Nanoseconds())/float64(n))
}
