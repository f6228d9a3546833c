// B21 select traffic beside a busy poller: a producer goroutine sends N
// values to a consumer through select (the consumer also selects on a quit
// channel), first alone, then while a third goroutine polls an empty
// channel with select and a default case in a loop. Prints the second
// time over the first. Raw times on stderr.
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func pair(n int) time.Duration {
	c, quit := make(chan int), make(chan struct{})
	t0 := time.Now()
	res := make(chan int)
	go func() {
		sum := 0
		for i := 0; i < n; i++ {
			select {
			case v := <-c:
				sum += v
			case <-quit:
				fmt.Fprintln(os.Stderr, "quit before the end")
				os.Exit(1)
			}
		}
		res <- sum
	}()
	done := make(chan struct{})
	go func() {
		for i := 1; i <= n; i++ {
			select {
			case c <- i:
			}
		}
		close(done)
	}()
	<-done
	if sum := <-res; sum != n*(n+1)/2 {
		fmt.Fprintln(os.Stderr, "values lost or repeated")
		os.Exit(1)
	}
	return time.Since(t0)
}

func main() {
	n := benchutil.Sized(100000)
	pair(benchutil.Sized(10000)) // warm-up
	alone := pair(n)
	stop := make(chan struct{})
	polls := make(chan int)
	go func() {
		idle := make(chan int)
		k := 0
		for {
			select {
			case <-idle:
			case <-stop:
				polls <- k
				return
			default:
				k++
			}
		}
	}()
	beside := pair(n)
	close(stop)
	k := <-polls
	if k == 0 {
		fmt.Fprintln(os.Stderr, "the poller did not run")
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "b21: N=%d alone %.3f s, beside the poller %.3f s (%d polls)\n",
		n, alone.Seconds(), beside.Seconds(), k)
	fmt.Printf("%.2f x\n", beside.Seconds()/alone.Seconds())
}
