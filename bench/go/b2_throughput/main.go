// B2 throughput: a goroutine sends integers to the main goroutine through a
// channel of capacity 1024. Prints messages per second (spawn included).
package main

import (
	"fmt"
	"os"
	"time"

	"concbench/benchutil"
)

func main() {
	n := benchutil.Sized(1000000)
	ch := make(chan int, 1024)
	t0 := time.Now()
	go func() {
		for i := 1; i <= n; i++ {
			ch <- i
		}
		close(ch)
	}()
	sum, count := 0, 0
	for v := range ch {
		sum += v
		count++
	}
	el := time.Since(t0)
	if count != n || sum != n*(n+1)/2 {
		fmt.Fprintln(os.Stderr, "wrong count/sum")
		os.Exit(1)
	}
	fmt.Printf("%.0f msg/s\n", float64(n)/el.Seconds())
}
