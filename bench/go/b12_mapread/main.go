// B12 sync.Map read scaling: goroutines call m.Load on the same 100 keys,
// 2M loads each; total loads/s with 2 goroutines in parallel divided by
// total loads/s with 1 (GOMAXPROCS 2). Prints that ratio (raw rates on
// stderr). The goroutines wait at a start channel, so spawning is not
// timed.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"concbench/benchutil"
)

const nkeys = 100

var m sync.Map

func reader(n int, ready chan<- bool, start <-chan bool, out *int) {
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i+1)
	}
	ready <- true
	<-start
	sum, k := 0, 0
	for i := 0; i < n; i++ {
		v, ok := m.Load(keys[k])
		if !ok {
			fmt.Fprintln(os.Stderr, "key", keys[k], "missing")
			os.Exit(1)
		}
		sum += v.(int)
		k++
		if k == nkeys {
			k = 0
		}
	}
	*out = sum
}

// expect: the sum of n loads cycling over values 1..nkeys.
func expect(n int) int {
	full, rest := n/nkeys, n%nkeys
	return full*nkeys*(nkeys+1)/2 + rest*(rest+1)/2
}

func run(nw, n int) (float64, time.Duration) {
	ready, start := make(chan bool, nw), make(chan bool)
	sums := make([]int, nw)
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			reader(n, ready, start, &sums[w])
		}(w)
	}
	for w := 0; w < nw; w++ {
		<-ready
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	el := time.Since(t0)
	for _, s := range sums {
		if s != expect(n) {
			fmt.Fprintln(os.Stderr, "wrong sum")
			os.Exit(1)
		}
	}
	return float64(nw*n) / el.Seconds(), el
}

func main() {
	runtime.GOMAXPROCS(2)
	n := benchutil.Sized(2000000)
	for i := 1; i <= nkeys; i++ {
		m.Store("key"+strconv.Itoa(i), i)
	}
	w := n
	if w > 20000 {
		w = 20000
	}
	run(2, w) // warm-up
	r1, t1 := run(1, n)
	r2, t2 := run(2, n)
	fmt.Fprintf(os.Stderr, "b12: N=%d loads/goroutine; 1 goroutine %.0f loads/s (%.3f s), 2 goroutines %.0f loads/s (%.3f s)\n",
		n, r1, t1.Seconds(), r2, t2.Seconds())
	fmt.Printf("%.2f x\n", r2/r1)
}
