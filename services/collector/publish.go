package collector

import (
	"context"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
)

// publishChunk is how many events go to the bus in one batch: on Kafka a
// batch is a few produce requests, so a poll of 5,000 statements or a
// large app-stats transaction costs a handful of round trips, with memory
// bounded by the chunk.
const publishChunk = 1000

// publishAll publishes evs in batches of publishChunk, in order, and
// reports which were published, stopping at the first batch with an
// error. Events of one target stay in order on its partition.
func publishAll[T events.Payload](ctx context.Context, b *bus.Bus, evs []T) ([]bool, error) {
	done := make([]bool, 0, len(evs))
	batch := make([]events.Payload, 0, min(len(evs), publishChunk))
	for lo := 0; lo < len(evs); lo += publishChunk {
		batch = batch[:0]
		for _, ev := range evs[lo:min(lo+publishChunk, len(evs))] {
			batch = append(batch, ev)
		}
		ok, err := b.PublishBatch(ctx, Name, "", batch)
		done = append(done, ok...)
		if err != nil {
			return append(done, make([]bool, len(evs)-len(done))...), err
		}
	}
	return done, nil
}
