// B15 contended semaphore: 8 goroutines share one semaphore of 2, each
// doing 20,000 acquire; release pairs with nothing in between. Prints ns
// per pair of the whole run (the best of 3 after a warm-up), as the Lua
// script does. golang.org/x/sync/semaphore cannot be fetched here: the
// twin is the chapter's channel semaphore (a buffered channel of 2).
package main

import (
	"fmt"
	"sync"
	"time"

	"concbench/benchutil"
)

func main() {
	const w = 8
	n := benchutil.Sized(20000)
	sem := make(chan struct{}, 2)
	run := func() float64 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < w; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for j := 0; j < n; j++ {
					sem <- struct{}{}
					<-sem
				}
			}()
		}
		time.Sleep(10 * time.Millisecond)
		t0 := time.Now()
		close(start)
		wg.Wait()
		return float64(time.Since(t0).Nanoseconds()) / float64(w*n)
	}
	run()
	best := 1e300
	for r := 0; r < 3; r++ {
		if v := run(); v < best {
			best = v
		}
	}
	fmt.Printf("%.1f ns/pair\n", best)
}
