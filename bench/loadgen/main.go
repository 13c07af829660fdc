// Command loadgen drives a closed loop of virtual users against a gRPC service or an HTTP API
// and prints every call's latency as JSON. It is the benchmarks' load generator (bench/benchkit.py builds and
// runs it): the targets are measured with the load generator on the same two cores, and this one
// spends a tenth of the CPU per call that a Python client does, so the numbers describe the
// services rather than the client.
//
// The plan comes on stdin (see benchkit.go_loadgen): per user, the calls of one cycle with their
// request bodies already encoded (protobuf bytes for gRPC, through a pass-through codec; JSON for
// HTTP), so this program knows no schema; replies are read and discarded. An HTTP call succeeds
// when it answers the status the plan expects, a gRPC call when it answers OK.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	Method string `json:"method"` // gRPC: the full method path, /package.Service/Method; HTTP: the verb
	Body   []byte `json:"body"`   // the encoded request, base64 in the JSON plan
	// HTTP only: the path under the plan's target, the request's headers, the expected status.
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Status  int               `json:"status"`
}

type user struct {
	Calls   []call `json:"calls"`
	Recover *call  `json:"recover"` // run once (result ignored) after a failed call, e.g. a stop
}

type plan struct {
	Protocol    string  `json:"protocol"` // "grpc" (the default) or "http"
	Target      string  `json:"target"`   // host:port for gRPC, a base URL for HTTP
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

// invoker runs one call and returns "" on success, else what failed (a gRPC status code's name,
// or the call's name and the HTTP status it answered).
type invoker func(ctx context.Context, c *call) string

// perConnection opens the plan's connections (at least one) with `open`, which returns a
// connection's invoker and what closes it; the users take them in turn.
func perConnection(p *plan, open func(*plan) (invoker, func(), error)) ([]invoker, func(), error) {
	n := max(p.Connections, 1)
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	invokers := make([]invoker, 0, n)
	for i := 0; i < n; i++ {
		invoke, closer, err := open(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, closer)
		invokers = append(invokers, invoke)
	}
	return invokers, closeAll, nil
}

func grpcConnection(p *plan) (invoker, func(), error) {
	conn, err := grpc.NewClient(p.Target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		return nil, nil, err
	}
	invoke := func(ctx context.Context, c *call) string {
		var reply []byte
		if err := conn.Invoke(ctx, c.Method, &c.Body, &reply); err != nil {
			return status.Code(err).String()
		}
		return ""
	}
	return invoke, func() { conn.Close() }, nil
}

// httpConnection is a client of its own, so a user keeps its own keep-alive connection as a
// real client would.
func httpConnection(p *plan) (invoker, func(), error) {
	t := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	client := &http.Client{
		Transport: t,
		// A redirect is an answer to check against the expected status, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	invoke := func(ctx context.Context, c *call) string {
		req, err := http.NewRequestWithContext(ctx, c.Method, p.Target+c.Path, bytes.NewReader(c.Body))
		if err != nil {
			return "bad request: " + err.Error()
		}
		for k, v := range c.Headers {
			req.Header.Set(k, v)
		}
		if len(c.Body) > 0 && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		failure := func() string {
			if ctx.Err() != nil {
				return c.Name + ": timeout"
			}
			return c.Name + ": connection error"
		}
		resp, err := client.Do(req)
		if err != nil {
			return failure()
		}
		// Read to the end: the connection is reused only after its reply was consumed.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return failure()
		}
		if resp.StatusCode != c.Status {
			return fmt.Sprintf("%s: HTTP %d", c.Name, resp.StatusCode)
		}
		return ""
	}
	return invoke, t.CloseIdleConnections, nil
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
	switch p.Protocol {
	case "", "grpc":
		invokers, closeAll, err = perConnection(&p, grpcConnection)
	case "http":
		invokers, closeAll, err = perConnection(&p, httpConnection)
	default:
		err = fmt.Errorf("unknown protocol %q", p.Protocol)
	}
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
