// Command porcupine_anchor checks one raftlab history with Porcupine, so that
// bench/checker_scale.py can print Porcupine's figure measured on this machine,
// in the same run as raftlab's checker, instead of a figure copied from issue 14
// (another machine, and histories of another generator).
//
// Usage:
//
//	porcupine_anchor [-timeout 60s] [-nil-read absent|unknown] HISTORY.jsonl
//
// It prints one JSON line:
//
//	{"valid": true|false|"unknown", "seconds": S, "cpu_seconds": C,
//	 "parse_seconds": P, "ops": N, "info": I, "dropped_fail": F}
//
// "seconds" is the check call alone on Go's monotonic clock (reading the file and
// building the operations is "parse_seconds"; Go's start-up is in neither);
// "cpu_seconds" is this process's user+system CPU over the same call (the garbage
// collector's threads included). "unknown" is Porcupine's time-out.
//
// The history is raftlab's JSONL (checker/history.py write_jsonl: one op map per
// line with index, time, type invoke/ok/fail/info, process, f read/write/cas and
// value: the read value, the written value, or [from, to] for a cas). The model is
// one cas-register starting nil, as raftlab's "cas-register":
//
//   - a read is legal iff its value equals the state; with -nil-read unknown (raftlab's
//     default for cas-register, Knossos' meaning) a read of nil is legal in any state;
//   - a write sets the state;
//   - a cas [from, to] that completed ok is legal iff the state is from, then it sets to;
//   - a fail did not happen: it is dropped (raftlab's cas-register does not observe
//     failures either);
//   - an info, or an invoke never completed, may or may not have happened: it returns
//     at math.MaxInt64 (so it may be linearized after everything, where it changes
//     nothing) and its output is "unknown", legal in any state (a cas then takes effect
//     iff the state is from), as Porcupine's own etcd model treats unknown outputs.
//
// Call and return times are the ops' positions in the file, not their "time" fields:
// raftlab's checker takes real-time order from the history's order, and positions never
// tie (Porcupine reads equal times as concurrent). Values are compared as their compact
// JSON text, so 1 and 1.0 differ (as in raftlab) and any JSON value can be written.
//
// Building (Go from Debian's golang-go, 1.19; Go's module proxy is not needed):
// Porcupine's source is third-party code and is never committed here. Put a copy of
// github.com/anishathalye/porcupine (bitset.go, checker.go, model.go, porcupine.go,
// visualization.go, visualization/, go.mod) in a folder outside the repository, e.g.
// /tmp/porcupine-src, then either point this module at it in place:
//
//	cd bench/porcupine_anchor
//	go mod edit -replace github.com/anishathalye/porcupine=/tmp/porcupine-src
//	GOFLAGS=-mod=mod GOPROXY=off go build -o /tmp/porcupine-anchor .
//	git checkout go.mod   # the replace names a local folder: not for committing
//
// or, leaving go.mod untouched, build from a copy of it:
//
//	cp go.mod /tmp/anchor.mod
//	go mod edit -modfile=/tmp/anchor.mod -replace github.com/anishathalye/porcupine=/tmp/porcupine-src
//	GOFLAGS=-mod=mod GOPROXY=off go build -modfile=/tmp/anchor.mod -o /tmp/porcupine-anchor .
//
// Then: python3 bench/checker_scale.py --porcupine /tmp/porcupine-anchor
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
)

const nilValue = "null" // the compact JSON text of nil: the register's initial state

type casInput struct {
	f     byte   // 'r' read, 'w' write, 'c' cas
	value string // the written value (write); unused for read and cas
	from  string // cas
	to    string // cas
}

type casOutput struct {
	unknown bool   // info or never completed: may or may not have happened
	value   string // the value read (read)
}

type rawOp struct {
	Type    string          `json:"type"`
	Process json.RawMessage `json:"process"`
	F       string          `json:"f"`
	Value   json.RawMessage `json:"value"`
}

// compact is the canonical text of a JSON value (absent or null: "null").
func compact(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return nilValue, nil
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return "", err
	}
	return out.String(), nil
}

func casRegister(nilReadUnknown bool) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return nilValue },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			st := state.(string)
			in := input.(casInput)
			out := output.(casOutput)
			switch in.f {
			case 'r':
				if out.unknown || (nilReadUnknown && out.value == nilValue) {
					return true, st
				}
				return out.value == st, st
			case 'w':
				return true, in.value
			default: // cas: ok only from `from`; unknown also as a no-op elsewhere
				if st == in.from {
					return true, in.to
				}
				return out.unknown, st
			}
		},
		DescribeOperation: func(input, output interface{}) string {
			in := input.(casInput)
			out := output.(casOutput)
			switch in.f {
			case 'r':
				return fmt.Sprintf("read() -> %s (unknown %v)", out.value, out.unknown)
			case 'w':
				return fmt.Sprintf("write(%s)", in.value)
			default:
				return fmt.Sprintf("cas(%s, %s) (unknown %v)", in.from, in.to, out.unknown)
			}
		},
	}
}

type counts struct {
	info, droppedFail int
}

// readHistory pairs each invoke with its completion on the same process (raftlab's
// pair_operations) and builds Porcupine's operations.
func readHistory(path string) ([]porcupine.Operation, counts, error) {
	var c counts
	file, err := os.Open(path)
	if err != nil {
		return nil, c, err
	}
	defer file.Close()
	type pending struct {
		input  casInput
		call   int64
		client int
	}
	outstanding := map[string]*pending{}
	clients := map[string]int{}
	var ops []porcupine.Operation
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<30)
	position := int64(0)
	line := 0
	for scanner.Scan() {
		line++
		text := bytes.TrimSpace(scanner.Bytes())
		if len(text) == 0 {
			continue
		}
		var op rawOp
		if err := json.Unmarshal(text, &op); err != nil {
			return nil, c, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		position++
		process := string(op.Process)
		if process == `"nemesis"` {
			continue
		}
		if op.Type == "invoke" {
			if _, busy := outstanding[process]; busy {
				return nil, c, fmt.Errorf("%s:%d: process %s invoked twice", path, line, process)
			}
			in := casInput{}
			switch op.F {
			case "read":
				in.f = 'r'
			case "write":
				in.f = 'w'
				if in.value, err = compact(op.Value); err != nil {
					return nil, c, err
				}
			case "cas":
				in.f = 'c'
				var pair []json.RawMessage
				if err := json.Unmarshal(op.Value, &pair); err != nil || len(pair) != 2 {
					return nil, c, fmt.Errorf("%s:%d: cas value is not [from, to]", path, line)
				}
				if in.from, err = compact(pair[0]); err != nil {
					return nil, c, err
				}
				if in.to, err = compact(pair[1]); err != nil {
					return nil, c, err
				}
			default:
				return nil, c, fmt.Errorf("%s:%d: f %q is not read, write or cas", path, line, op.F)
			}
			client, known := clients[process]
			if !known {
				client = len(clients)
				clients[process] = client
			}
			outstanding[process] = &pending{in, position, client}
			continue
		}
		invoked, ok := outstanding[process]
		if !ok {
			if op.Type == "info" {
				continue // an info with no invoke (a crash notice): nothing to place
			}
			return nil, c, fmt.Errorf("%s:%d: %s with no invoke on process %s", path, line, op.Type, process)
		}
		delete(outstanding, process)
		switch op.Type {
		case "fail":
			c.droppedFail++
		case "info":
			c.info++
			ops = append(ops, porcupine.Operation{ClientId: invoked.client, Input: invoked.input,
				Call: invoked.call, Output: casOutput{unknown: true}, Return: math.MaxInt64})
		case "ok":
			out := casOutput{}
			if invoked.input.f == 'r' {
				if out.value, err = compact(op.Value); err != nil {
					return nil, c, err
				}
			}
			ops = append(ops, porcupine.Operation{ClientId: invoked.client, Input: invoked.input,
				Call: invoked.call, Output: out, Return: position})
		default:
			return nil, c, fmt.Errorf("%s:%d: type %q", path, line, op.Type)
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, c, err
	}
	for _, invoked := range outstanding { // never completed: as info
		c.info++
		ops = append(ops, porcupine.Operation{ClientId: invoked.client, Input: invoked.input,
			Call: invoked.call, Output: casOutput{unknown: true}, Return: math.MaxInt64})
	}
	return ops, c, nil
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return math.NaN()
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "Porcupine's time limit (0: none)")
	nilRead := flag.String("nil-read", "absent",
		"what a read of nil means: absent (the register holds nil) or unknown (constrains nothing)")
	flag.Parse()
	if flag.NArg() != 1 || (*nilRead != "absent" && *nilRead != "unknown") {
		fmt.Fprintln(os.Stderr, "usage: porcupine_anchor [-timeout 60s] [-nil-read absent|unknown] HISTORY.jsonl")
		os.Exit(2)
	}
	parseStarted := time.Now()
	ops, c, err := readHistory(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "porcupine_anchor:", err)
		os.Exit(2)
	}
	parseSeconds := time.Since(parseStarted).Seconds()
	model := casRegister(*nilRead == "unknown")

	cpuBefore := cpuSeconds()
	started := time.Now() // time.Since reads the monotonic clock
	result := porcupine.CheckOperationsTimeout(model, ops, *timeout)
	seconds := time.Since(started).Seconds()
	cpu := cpuSeconds() - cpuBefore

	var valid interface{}
	switch result {
	case porcupine.Ok:
		valid = true
	case porcupine.Illegal:
		valid = false
	default:
		valid = "unknown"
	}
	line, _ := json.Marshal(map[string]interface{}{
		"valid": valid, "seconds": seconds, "cpu_seconds": cpu, "parse_seconds": parseSeconds,
		"ops": len(ops), "info": c.info, "dropped_fail": c.droppedFail,
	})
	fmt.Println(string(line))
}
