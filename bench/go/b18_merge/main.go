// B18 merge of 8 channels: the chapter's fanIn (a goroutine per input
// forwarding to one unbuffered output, a WaitGroup closing it). 8 producer
// goroutines each send N/8 integers on an input of their own (capacity
// 128) and close it; main receives everything from the merged channel.
// Prints ns per value received (3 runs, the best), as the Lua script does.
package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"concbench/benchutil"
)

func fanIn(channels ...<-chan int) <-chan int {
	out := make(chan int)
	var wg sync.WaitGroup
	for _, ch := range channels {
		wg.Add(1)
		go func(c <-chan int) {
			defer wg.Done()
			for n := range c {
				out <- n
			}
		}(ch)
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

const k = 8

func run(n int) float64 {
	per := n / k
	ins := make([]<-chan int, k)
	start := make(chan struct{})
	for i := 0; i < k; i++ {
		ch := make(chan int, 128)
		ins[i] = ch
		go func(ch chan int) {
			<-start
			for v := 1; v <= per; v++ {
				ch <- v
			}
			close(ch)
		}(ch)
	}
	merged := fanIn(ins...)
	t0 := time.Now()
	close(start)
	got := 0
	for range merged {
		got++
	}
	el := time.Since(t0)
	if got != per*k {
		fmt.Fprintln(os.Stderr, "lost values")
		os.Exit(1)
	}
	return float64(el.Nanoseconds()) / float64(got)
}

func main() {
	run(benchutil.Sized(8000)) // warm-up
	best := 1e18
	for r := 0; r < 3; r++ {
		if v := run(benchutil.Sized(400000)); v < best {
			best = v
		}
	}
	fmt.Printf("%.1f ns/value\n", best)
}
