// Command tollgate-oracle answers, one JSON line per JSON line read, what Kubernetes' own parsers
// say about a quantity or an image reference. It is the oracle the pack's Rego is checked
// against (engine/tests/oracle.rs); it is test-only and never part of the tollgate binary.
//
// Input lines: {"kind":"quantity","value":"500m"} or {"kind":"image","value":"nginx:1.27"}.
// Output lines (same order):
//
//	quantity: {"valid":true,"milli":"500","value":"1","exact":"5e-1","canonical":"500m","fits":true}
//	image:    {"valid":true,"domain":"docker.io","path":"library/nginx","tag":"1.27","digest":""}
//
// exact is the parsed value (unscaled "e" exponent). Only when fits (|value| * 1000 well inside
// int64; beyond, Go's MilliValue is meaningless): milli and value are Quantity.MilliValue() and
// Value() (ceil, away from zero) as decimal strings, and canonical is how the API server would
// write the quantity back. A parse that does not return within 2s is answered as valid with
// an error saying so (see slowParse).
package main

import (
	"bufio"
	"context"
	// The digest algorithms the distribution grammar accepts are those linked in, as in any
	// real client (containerd, the kubelet).
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"time"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/api/resource"
)

type request struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type quantity struct {
	Valid     bool   `json:"valid"`
	Error     string `json:"error,omitempty"`
	Milli     string `json:"milli,omitempty"`
	Value     string `json:"value,omitempty"`
	Exact     string `json:"exact,omitempty"`
	Canonical string `json:"canonical,omitempty"`
	Fits      bool   `json:"fits"`
}

type image struct {
	Valid  bool   `json:"valid"`
	Error  string `json:"error,omitempty"`
	Domain string `json:"domain,omitempty"`
	Path   string `json:"path,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// fits reports whether |q| * 1000 is well inside int64, from the digit count alone (powers of
// ten the size of the exponent would not fit in memory).
func fits(q resource.Quantity) bool {
	d := q.AsDec()
	if d.UnscaledBig().Sign() == 0 {
		return true
	}
	digits := int64(len(d.UnscaledBig().String()))
	if d.UnscaledBig().Sign() < 0 {
		digits--
	}
	return digits-int64(d.Scale()) <= 14
}

// slowParse is how long ParseQuantity may run. Kubernetes' parser rescales to nano precision
// with big integers, so a mantissa off the int64 fast path with a huge exponent
// ("99999999999999999999e2147483647", "1e-2147483647") runs for minutes, and its assembly loops
// cannot be preempted: the garbage collector then stops the whole process with it. Such inputs
// are parsed in a child process that is killed after slowParse; by then the parser has accepted
// the input (only the value is left to compute).
const slowParse = 2 * time.Second

// hugeExponent matches an exponent suffix of five digits or more.
var hugeExponent = regexp.MustCompile(`[eE][+-]?[0-9]{5,}`)

// parseAside runs ParseQuantity(s) in a child process (this binary with -parse).
func parseAside(s string) (answer quantity, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), slowParse)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return quantity{Error: err.Error()}, false
	}
	out, err := exec.CommandContext(ctx, self, "-parse", s).Output()
	if ctx.Err() != nil {
		return quantity{Valid: true, Error: "ParseQuantity did not return (value not computed)"}, true
	}
	if err != nil {
		return quantity{Error: "child: " + err.Error()}, true
	}
	if err := json.Unmarshal(out, &answer); err != nil {
		return quantity{Error: "child: " + err.Error()}, true
	}
	return answer, true
}

func checkQuantity(s string) quantity {
	if hugeExponent.MatchString(s) {
		if answer, ok := parseAside(s); ok {
			return answer
		}
	}
	return parseQuantity(s)
}

func parseQuantity(s string) quantity {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return quantity{Error: err.Error()}
	}
	d := q.AsDec()
	out := quantity{
		Valid: true,
		Exact: fmt.Sprintf("%se%d", d.UnscaledBig(), -int64(d.Scale())),
		Fits:  fits(q),
	}
	if out.Fits {
		// String() echoes the input when it was already canonical; Neg twice forgets it.
		canonical := q.DeepCopy()
		canonical.Neg()
		canonical.Neg()
		out.Milli = fmt.Sprint(q.MilliValue())
		out.Value = fmt.Sprint(q.Value())
		out.Canonical = canonical.String()
	}
	return out
}

func checkImage(s string) image {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return image{Error: err.Error()}
	}
	out := image{Valid: true, Domain: reference.Domain(named), Path: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		out.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		out.Digest = d.Digest().String()
	}
	return out
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-parse" {
		if err := json.NewEncoder(os.Stdout).Encode(parseQuantity(os.Args[2])); err != nil {
			os.Exit(1)
		}
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var answer any
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			answer = map[string]string{"error": "bad request line: " + err.Error()}
		} else {
			switch req.Kind {
			case "quantity":
				answer = checkQuantity(req.Value)
			case "image":
				answer = checkImage(req.Value)
			default:
				answer = map[string]string{"error": "unknown kind " + req.Kind}
			}
		}
		if err := enc.Encode(answer); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Answer each line at once: the caller writes a line and waits for its answer.
		if err := out.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
