// B17 publish to 100 subscribers: the chapter's PubSub (an RWMutex, a map
// of subscribers, a non-blocking send to each) with 100 subscribers of
// topic "t" (capacity 100 each). Publishes go in batches of 64, timed;
// after each batch the channels are drained, untimed, so that no publish
// is a drop. Prints ns per publish, as the Lua script does.
package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"concbench/benchutil"
)

type Message struct {
	Topic   string
	Payload interface{}
}

type Subscriber struct {
	ch     chan Message
	topics map[string]bool
}

type PubSub struct {
	mu          sync.RWMutex
	subscribers map[string]*Subscriber
}

func (ps *PubSub) Subscribe(id string, topics ...string) <-chan Message {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	tm := make(map[string]bool)
	for _, t := range topics {
		tm[t] = true
	}
	sub := &Subscriber{ch: make(chan Message, 100), topics: tm}
	ps.subscribers[id] = sub
	return sub.ch
}

// Publish returns how many subscribers received msg (conc's does).
func (ps *PubSub) Publish(topic string, payload interface{}) int {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	msg := Message{Topic: topic, Payload: payload}
	n := 0
	for _, sub := range ps.subscribers {
		if sub.topics[topic] {
			select {
			case sub.ch <- msg:
				n++
			default:
			}
		}
	}
	return n
}

const subs, batch = 100, 64

func main() {
	ps := &PubSub{subscribers: make(map[string]*Subscriber)}
	chans := make([]<-chan Message, subs)
	for i := range chans {
		chans[i] = ps.Subscribe(fmt.Sprintf("sub%d", i+1), "t")
	}
	drain := func() {
		for _, ch := range chans {
			for len(ch) > 0 {
				<-ch
			}
		}
	}
	run := func(batches int) float64 {
		var spent time.Duration
		for b := 0; b < batches; b++ {
			t0 := time.Now()
			for i := 0; i < batch; i++ {
				if ps.Publish("t", "payload") != subs {
					fmt.Fprintln(os.Stderr, "a drop")
					os.Exit(1)
				}
			}
			spent += time.Since(t0)
			drain()
		}
		return float64(spent.Nanoseconds()) / float64(batches*batch)
	}
	run(20) // warm-up
	best := 1e18
	for r := 0; r < 3; r++ {
		if v := run(benchutil.Sized(150)); v < best {
			best = v
		}
	}
	fmt.Printf("%.1f ns/publish\n", best)
}
