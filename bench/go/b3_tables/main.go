// B3 struct messages: as B2 with messages Task{ID: i, Name: "task-"+i,
// Tags: []int{1, 2, 3}}; the consumer reads one field. Prints messages per
// second.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"concbench/benchutil"
)

type Task struct {
	ID   int
	Name string
	Tags []int
}

func main() {
	n := benchutil.Sized(200000)
	ch := make(chan Task, 1024)
	t0 := time.Now()
	go func() {
		for i := 1; i <= n; i++ {
			ch <- Task{ID: i, Name: "task-" + strconv.Itoa(i), Tags: []int{1, 2, 3}}
		}
		close(ch)
	}()
	sum, count := 0, 0
	for m := range ch {
		sum += m.ID
		count++
	}
	el := time.Since(t0)
	if count != n || sum != n*(n+1)/2 {
		fmt.Fprintln(os.Stderr, "wrong count/sum")
		os.Exit(1)
	}
	fmt.Printf("%.0f msg/s\n", float64(n)/el.Seconds())
}
