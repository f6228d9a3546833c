// B8 select over 4 channels (capacity 1) with one ready; the ready one is
// refilled after each select. Prints ns per select (refill included).
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func main() {
	n := benchutil.Sized(500000)
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
