package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/indexpilot/indexpilot/events"
)

// The helper process runs kfake, a consumer that counts the records of the
// collector's topics, and the workload driver. It speaks a line protocol on
// stdin and stdout:
//
//	(start)                          -> "brokers host:port,..."
//	"count"                          -> "count <querystat> <tablestat> <appstat>"
//	"drive <interval> <n> <url>..."  -> "ok"   (no url: stop driving)
//
// and exits when stdin closes.

// workloadCols is the number of int columns of the bench table.
const workloadCols = 20

// runWorkload runs n structurally distinct statements once each on c, so
// that pg_stat_statements holds (or counts once more) n entries for the
// database.
func runWorkload(ctx context.Context, c *pgx.Conn, n int) error {
	b := &pgx.Batch{}
	for k := range n {
		// Distinct parse trees: the selected columns, the filtered column
		// and the number of ORs differ.
		x, y, z := k%workloadCols, (k/workloadCols)%workloadCols, k/(workloadCols*workloadCols)
		q := fmt.Sprintf("select c%d from bench where c%d = $1", x, y)
		for range z {
			q += fmt.Sprintf(" or c%d = $1", x)
		}
		b.Queue(q, k)
	}
	return c.SendBatch(ctx, b).Close()
}

func helper(in io.Reader, out io.Writer) error {
	var topics []string
	for _, t := range events.Types {
		topics = append(topics, events.Topic(t), events.PoisonTopic(events.Topic(t)))
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...), kfake.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(collectorTopics()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var counts [3]atomic.Int64
	index := map[string]int{}
	for i, t := range collectorTopics() {
		index[t] = i
	}
	go func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				if i, ok := index[r.Topic]; ok {
					counts[i].Add(1)
				}
			})
		}
	}()
	d := &driver{}
	defer d.stop()

	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "brokers %s\n", strings.Join(c.ListenAddrs(), ","))
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "count":
			fmt.Fprintf(w, "count %d %d %d\n", counts[0].Load(), counts[1].Load(), counts[2].Load())
		case "drive":
			d.stop()
			if len(f) >= 3 {
				every, err1 := time.ParseDuration(f[1])
				n, err2 := strconv.Atoi(f[2])
				if err := errors.Join(err1, err2); err != nil {
					return err
				}
				if len(f) > 3 && n > 0 {
					d.start(every, n, f[3:])
				}
			}
			fmt.Fprintln(w, "ok")
		default:
			return fmt.Errorf("unknown command %q", f[0])
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// driver runs every target's statements once per interval, spreading the
// targets over the interval, four targets at a time (a connection each,
// opened per pass).
type driver struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (d *driver) start(every time.Duration, n int, urls []string) {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	next := make(chan string)
	for range 4 {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for u := range next {
				c, err := pgx.Connect(ctx, u)
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "driver:", err)
					}
					continue
				}
				if err := runWorkload(ctx, c, n); err != nil && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "driver:", err)
				}
				_ = c.Close(context.Background())
			}
		}()
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(next)
		gap := every / time.Duration(len(urls))
		t := time.NewTicker(gap)
		defer t.Stop()
		for i := 0; ; i = (i + 1) % len(urls) {
			select {
			case next <- urls[i]:
			case <-ctx.Done():
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (d *driver) stop() {
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
		d.cancel = nil
	}
}

// helperProc is the parent's handle on the helper process.
type helperProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	mu      sync.Mutex
	brokers []string
}

type counts struct{ queryStats, tableStats, appStats int64 }

func (c counts) total() int64 { return c.queryStats + c.tableStats + c.appStats }

func startHelper() (*helperProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &helperProc{cmd: exec.Command(exe, "-helper")}
	h.cmd.Stderr = os.Stderr
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.out = bufio.NewReader(stdout)
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the kfake helper: %w", err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "brokers ") {
		h.close()
		return nil, fmt.Errorf("the kfake helper did not start (said %q): %v", line, err)
	}
	h.brokers = strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "brokers ")), ",")
	return h, nil
}

func (h *helperProc) ask(cmd string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := io.WriteString(h.in, cmd+"\n"); err != nil {
		return "", fmt.Errorf("kfake helper: %w", err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("kfake helper: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// count is how many records of each collector topic the helper consumed.
func (h *helperProc) count() (counts, error) {
	line, err := h.ask("count")
	if err != nil {
		return counts{}, err
	}
	var c counts
	if _, err := fmt.Sscanf(line, "count %d %d %d", &c.queryStats, &c.tableStats, &c.appStats); err != nil {
		return counts{}, fmt.Errorf("kfake helper said %q", line)
	}
	return c, nil
}

// drive makes the helper run n statements in each of urls once per
// interval; no urls stops it.
func (h *helperProc) drive(every time.Duration, n int, urls []string) error {
	line, err := h.ask(strings.TrimSpace(fmt.Sprintf("drive %s %d %s", every, n, strings.Join(urls, " "))))
	if err != nil {
		return err
	}
	if line != "ok" {
		return fmt.Errorf("kfake helper said %q", line)
	}
	return nil
}

func (h *helperProc) close() {
	_ = h.in.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}
