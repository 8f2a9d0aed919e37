package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// The helper process of TestKilledGroupMemberIsReplaced: a consumer group
// member of its own, through the bus's Kafka subscriber, that prints the
// id of every message it receives.
const (
	memberEnvBrokers = "INDEXPILOT_TEST_MEMBER_BROKERS"
	memberTopic      = "indexpilot.test.members"
	memberGroup      = "indexpilot.test.members"
)

func TestGroupMemberHelperProcess(t *testing.T) {
	brokers := os.Getenv(memberEnvBrokers)
	if brokers == "" {
		t.Skip("helper process of TestKilledGroupMemberIsReplaced")
	}
	b, err := bus.NewKafka(config.Kafka{Brokers: strings.Split(brokers, ","), Version: "3.6.0"}, testLogger())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	msgs, err := subscribeMembers(b)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for m := range msgs {
		fmt.Printf("got %s\n", m.UUID)
		m.Ack()
	}
	os.Exit(0)
}

func subscribeMembers(b *bus.Bus) (<-chan *message.Message, error) {
	sub, err := b.Subscriber(memberGroup)
	if err != nil {
		return nil, err
	}
	return sub.Subscribe(context.Background(), memberTopic)
}

// member is one helper process.
type member struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startMember(t *testing.T, brokers []string, got func(string)) *member {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupMemberHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), memberEnvBrokers+"="+strings.Join(brokers, ","))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	m := &member{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "got "); ok {
				got(id)
			}
		}
		_ = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(m.kill)
	return m
}

// kill is SIGKILL: the member leaves nothing behind, no LeaveGroup.
func (m *member) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// TestKilledGroupMemberIsReplaced is the chaos suite's stuck executor group
// (issue 13, seed 700), on the bus's own Kafka subscriber: members of a
// group are SIGKILLed while their JoinGroup waits in a rebalance, until one
// of them stays in the group without a session (kfake then never expires
// it by heartbeat; a real broker would, but a member that does not rejoin
// is the same case: only the rebalance timeout drops it). A replacement
// member starts, as the supervisor restarts a killed stage. The surviving
// member and the replacement must then receive every message published
// after it, within a bound. With Sarama's default timing (a rebalance
// timeout of 60 s beyond its 30 s read timeout) every join timed out, each
// retry joined as a new member and restarted the rebalance, and nothing was
// consumed again; with a rebalance timeout beyond the session timeout the
// broker dropped the survivor while it waited in its join (about a minute).
func TestKilledGroupMemberIsReplaced(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, memberTopic))
	require.NoError(t, err)
	defer c.Close()
	brokers := c.ListenAddrs()

	var mu sync.Mutex
	received := map[string]string{} // message id -> who
	got := func(who string) func(string) {
		return func(id string) {
			mu.Lock()
			received[id] = who
			mu.Unlock()
		}
	}

	// Every member id that joins; the one to kill is set while a victim
	// starts: its first join with a member id (KIP-394's second request,
	// the one that makes it a member) kills it before the broker sees it.
	var (
		survivorIDs = map[string]bool{}
		victim      *member
	)
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		jr := req.(*kmsg.JoinGroupRequest)
		if jr.MemberID == "" || jr.Group != memberGroup {
			return nil, nil, false
		}
		mu.Lock()
		v := victim
		switch {
		case v == nil:
			survivorIDs[jr.MemberID] = true
		case !survivorIDs[jr.MemberID]:
			victim = nil
		default:
			v = nil
		}
		mu.Unlock()
		if v != nil {
			v.kill() // the broker handles this join after the process is gone
		}
		return nil, nil, false
	})

	// The survivor, in this process.
	b, err := bus.NewKafka(config.Kafka{Brokers: brokers, Version: "3.6.0"}, testLogger())
	require.NoError(t, err)
	defer b.Close()
	msgs, err := subscribeMembers(b)
	require.NoError(t, err)
	go func() {
		for m := range msgs {
			got("survivor")(m.UUID)
			m.Ack()
		}
	}()
	publish := func(n int, prefix string) []string {
		var ids []string
		for i := 0; i < n; i++ {
			m := message.NewMessage(fmt.Sprintf("%s-%d", prefix, i), []byte("{}"))
			m.Metadata.Set(bus.MetaSubject, fmt.Sprintf("target-%d", i)) // spread over the partitions
			require.NoError(t, b.Publisher().Publish(memberTopic, m))
			ids = append(ids, m.UUID)
		}
		return ids
	}
	waitAll := func(ids []string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			mu.Lock()
			var missing []string
			for _, id := range ids {
				if _, ok := received[id]; !ok {
					missing = append(missing, id)
				}
			}
			mu.Unlock()
			if len(missing) == 0 {
				return
			}
			require.True(t, time.Now().Before(deadline), "%d of %d messages not consumed within %s: %v",
				len(missing), len(ids), within, missing)
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAll(publish(6, "probe"), 30*time.Second) // the survivor alone holds the group

	// Kill members mid-join until one stays in the group with no session.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer kcl.Close()
	lingering := func() int {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{memberGroup}
		resp, err := req.RequestWith(context.Background(), kcl)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, g := range resp.Groups {
			for _, m := range g.Members {
				if !survivorIDs[m.MemberID] {
					n++
				}
			}
		}
		return n
	}
	const attempts = 10
	for i := 0; ; i++ {
		require.Less(t, i, attempts, "no killed member stayed in the group after %d kills", attempts)
		mu.Lock()
		victim = startMember(t, brokers, got("victim"))
		v := victim
		mu.Unlock()
		select {
		case <-v.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the victim never joined the group")
		}
		// Its join completes once the survivor rejoins (a heartbeat),
		// then a member with a session is expired after SessionTimeout.
		time.Sleep(bus.HeartbeatInterval + bus.SessionTimeout + 2*time.Second)
		if lingering() > 0 {
			t.Logf("a member killed mid-join stays in the group after %d kill(s)", i+1)
			break
		}
	}

	// The replacement; from now on every message must be consumed.
	startMember(t, brokers, got("replacement"))
	ids := publish(30, "after")
	start := time.Now()
	// The rebalance the replacement starts ends RebalanceTimeout after the
	// survivor rejoined (a heartbeat after the replacement's join), without
	// the killed member. The bound leaves room for a slow start and a
	// second rebalance, not for a join that times out (NetReadTimeout) and
	// starts over.
	waitAll(ids, 2*bus.RebalanceTimeout+bus.SessionTimeout)
	t.Logf("all %d messages consumed %s after they were published", len(ids), time.Since(start).Round(time.Second))
	require.Zero(t, lingering(), "the killed member is still in the group")
}
