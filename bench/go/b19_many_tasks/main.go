// B19 many tasks: 100,000 goroutines parked on a channel receive at once,
// then all released (the channel closed) and joined. Prints the seconds
// from the first spawn to the last join.
package main

import (
	"fmt"
	"os"

	"concbench/benchutil"
	"concbench/manytasks"
)

func main() {
	secs, kb := manytasks.Run(benchutil.Sized(100000))
	fmt.Fprintf(os.Stderr, "b19: %.3f s, VmHWM %d kB\n", secs, kb)
	fmt.Printf("%.3f s\n", secs)
}
