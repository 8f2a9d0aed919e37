// Command kfake-broker runs an in-memory Kafka-protocol broker (kfake) as
// its own process, with every IndexPilot topic (and its poison topic)
// created with three partitions, state persisted in -data-dir so that a
// stopped broker restarted on the same port and directory comes back with
// its topics, messages and committed offsets. The chaos suite uses it to
// run the stages as separate processes and to stop the broker mid-run.
//
//	kfake-broker -port 19092 -data-dir /tmp/broker
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/indexpilot/indexpilot/events"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (127.0.0.1); required")
	dataDir := flag.String("data-dir", "", "directory the broker persists its state in; required")
	flag.Parse()
	if *port <= 0 || *port > 65535 || *dataDir == "" {
		fmt.Fprintln(os.Stderr, "kfake-broker: -port (1-65535) and -data-dir are required")
		os.Exit(2)
	}
	var topics []string
	for _, t := range events.Types {
		topics = append(topics, events.Topic(t), events.PoisonTopic(events.Topic(t)))
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.DataDir(*dataDir),
		kfake.SeedTopics(3, topics...),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake-broker:", err)
		os.Exit(1)
	}
	fmt.Println("kfake-broker: listening on", c.ListenAddrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	c.Close()
}
