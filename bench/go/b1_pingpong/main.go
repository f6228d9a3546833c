// B1 ping-pong: the main goroutine and one other goroutine pass an integer
// back and forth over two unbuffered channels. Prints ns per round trip.
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func main() {
	n := benchutil.Sized(100000)
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
