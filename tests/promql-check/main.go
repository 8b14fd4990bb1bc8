// tollgate-promql-check: the chart's alerting rules and Grafana dashboard against Prometheus's own
// parsers, at the version the pinned Prometheus Operator builds with (go.mod).
//
// Usage: tollgate-promql-check RENDERED.yaml
//
// Every PrometheusRule in the rendered chart goes through rulefmt.Parse, as the operator's
// admission webhook does (pkg/operator.ValidateRule: it refuses a PrometheusRule whose rules do not
// parse, so a bad expression would fail `helm install`); every query of every dashboard in a
// ConfigMap (panel targets and query variables) goes through the PromQL parser, with Grafana's
// interval variables replaced by a duration. Prints what it checked; exits 1 on any error.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tollgate-promql-check RENDERED.yaml")
		os.Exit(2)
	}
	// As the operator (pkg/operator/rules.go): legacy metric and label names only.
	model.NameValidationScheme = model.LegacyValidation //nolint:staticcheck
	content, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		fmt.Printf("error: "+format+"\n", args...)
	}
	decoder := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var doc map[string]any
		if err := decoder.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			fail("reading %s: %v", os.Args[1], err)
			break
		}
		if doc == nil {
			continue
		}
		name := fmt.Sprintf("%v %v", doc["kind"], doc["metadata"].(map[string]any)["name"])
		switch doc["kind"] {
		case "PrometheusRule":
			spec, err := yaml.Marshal(doc["spec"])
			if err != nil {
				fail("%s: %v", name, err)
				continue
			}
			groups, errs := rulefmt.Parse(spec, false)
			for _, e := range errs {
				fail("%s: %v", name, e)
			}
			if groups != nil {
				n := 0
				for _, g := range groups.Groups {
					n += len(g.Rules)
				}
				fmt.Printf("%s: %d rules parse (rulefmt)\n", name, n)
			}
		case "ConfigMap":
			data, _ := doc["data"].(map[string]any)
			for key, value := range data {
				text, _ := value.(string)
				var dashboard map[string]any
				if json.Unmarshal([]byte(text), &dashboard) != nil || dashboard["panels"] == nil {
					continue
				}
				exprs := queries(dashboard)
				if len(exprs) == 0 {
					fail("%s %s: a dashboard without queries", name, key)
				}
				for _, q := range exprs {
					if _, err := parser.ParseExpr(q.expr); err != nil {
						fail("%s %s, %s: %v\n    %s", name, key, q.where, err, q.expr)
					}
				}
				fmt.Printf("%s %s: %d dashboard queries parse (PromQL)\n", name, key, len(exprs))
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

type query struct{ where, expr string }

// Grafana's interval variables stand where PromQL wants a duration.
var intervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// label_values(SELECTOR, LABEL) of a query variable: Grafana's, around a PromQL selector.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

func queries(dashboard map[string]any) []query {
	var out []query
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			panel, _ := p.(map[string]any)
			targets, _ := panel["targets"].([]any)
			for _, t := range targets {
				target, _ := t.(map[string]any)
				if expr, ok := target["expr"].(string); ok {
					out = append(out, query{fmt.Sprintf("panel %q %v", panel["title"], target["refId"]), intervals.Replace(expr)})
				}
			}
			nested, _ := panel["panels"].([]any)
			walk(nested)
		}
	}
	panels, _ := dashboard["panels"].([]any)
	walk(panels)
	templating, _ := dashboard["templating"].(map[string]any)
	variables, _ := templating["list"].([]any)
	for _, v := range variables {
		variable, _ := v.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		q, _ := variable["query"].(map[string]any)
		text, _ := q["query"].(string)
		if m := labelValues.FindStringSubmatch(text); m != nil {
			text = m[1]
		}
		out = append(out, query{fmt.Sprintf("variable %v", variable["name"]), intervals.Replace(text)})
	}
	return out
}
