// Command loadgen drives a closed loop of virtual users against a gRPC service and prints
// every call's latency as JSON. It is the benchmarks' load generator (bench/benchkit.py builds and
// runs it): the targets are measured with the load generator on the same two cores, and this one
// spends a tenth of the CPU per call that a Python client does, so the numbers describe the
// services rather than the client.
//
// The plan comes on stdin (see benchkit.go_loadgen): per user, the calls of one cycle with their
// request bodies already encoded as protobuf bytes, so this program knows no schema: they go
// through a pass-through codec; replies are read and discarded.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

type call struct {
	Name   string `json:"name"`
	Method string `json:"method"` // the full method path, /package.Service/Method
	Body   []byte `json:"body"`   // the encoded request, base64 in the JSON plan
}

type user struct {
	Calls   []call `json:"calls"`
	Recover *call  `json:"recover"` // run once (result ignored) after a failed call, e.g. a stop
}

type plan struct {
	Target      string  `json:"target"`
	Connections int     `json:"connections"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`
	TimeoutS    float64 `json:"timeout_s"`
	Users       []user  `json:"users"`
}

type result struct {
	Cycles     int                  `json:"cycles"`
	LatencyMs  map[string][]float64 `json:"latency_ms"`
	CycleMs    []float64            `json:"cycle_ms"`
	Errors     map[string]int       `json:"errors"`
	AllCycles  int                  `json:"all_cycles"` // warm-up included
	CPUSeconds float64              `json:"cpu_s"`      // this process's user+system CPU, warm-up included
}

// rawCodec passes already-encoded protobuf bytes through in both directions.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// invoker runs one call and returns "" on success or the name of its gRPC status code.
type invoker func(ctx context.Context, c *call) string

func grpcInvokers(p *plan) ([]invoker, func(), error) {
	n := max(p.Connections, 1)
	conns := make([]*grpc.ClientConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	invokers := make([]invoker, 0, n)
	for i := 0; i < n; i++ {
		conn, err := grpc.NewClient(p.Target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, conn)
		invokers = append(invokers, func(ctx context.Context, c *call) string {
			var reply []byte
			if err := conn.Invoke(ctx, c.Method, &c.Body, &reply); err != nil {
				return status.Code(err).String()
			}
			return ""
		})
	}
	return invokers, closeAll, nil
}

func main() {
	var p plan
	if err := json.NewDecoder(os.Stdin).Decode(&p); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: bad plan on stdin:", err)
		os.Exit(2)
	}
	var invokers []invoker
	var closeAll func()
	var err error
	invokers, closeAll, err = grpcInvokers(&p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	defer closeAll()
	timeout := time.Duration(max(p.TimeoutS, 1) * float64(time.Second))

	begin := time.Now()
	measureFrom := begin.Add(time.Duration(p.WarmupS * float64(time.Second)))
	until := measureFrom.Add(time.Duration(p.DurationS * float64(time.Second)))

	res := result{LatencyMs: map[string][]float64{}, Errors: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range p.Users {
		u := &p.Users[i]
		invoke := invokers[i%len(invokers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]float64, len(u.Calls))
			for {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				failed := ""
				prev := t0
				for j := range u.Calls {
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					failed = invoke(ctx, &u.Calls[j])
					cancel()
					now := time.Now()
					lat[j] = float64(now.Sub(prev).Nanoseconds()) / 1e6
					prev = now
					if failed != "" {
						break
					}
				}
				if failed != "" {
					mu.Lock()
					res.Errors[failed]++
					mu.Unlock()
					if u.Recover != nil {
						ctx, cancel := context.WithTimeout(context.Background(), timeout)
						invoke(ctx, u.Recover)
						cancel()
					}
					continue
				}
				mu.Lock()
				res.AllCycles++
				if t0.Before(measureFrom) || prev.After(until) {
					mu.Unlock()
					continue
				}
				for j := range u.Calls {
					name := u.Calls[j].Name
					res.LatencyMs[name] = append(res.LatencyMs[name], lat[j])
				}
				res.CycleMs = append(res.CycleMs, float64(prev.Sub(t0).Nanoseconds())/1e6)
				res.Cycles++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err == nil {
		res.CPUSeconds = time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	}
	if err := json.NewEncoder(os.Stdout).Encode(&res); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
