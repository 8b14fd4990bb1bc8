// Command tollgate-crd-oracle prints the constraint CRD that Gatekeeper v3.23.0 itself would create
// for a ConstraintTemplate. It is test-only and never part of the tollgate binary.
//
// Why: tollgate generates these CRDs in Rust (a drop-in must create the same constraint kinds,
// with the same schema, printer columns and versions, as Gatekeeper's controller); the end-to-end
// tests compare tollgate's CRDs with what this program says Gatekeeper's own generator makes.
//
// Usage: tollgate-crd-oracle FILE...
//
// Each FILE is YAML (one or more documents). For each document of kind ConstraintTemplate, in
// order, one line of JSON is printed: the apiextensions.k8s.io/v1 CustomResourceDefinition (with
// apiVersion and kind set), or, when Gatekeeper would refuse the template,
// {"template": NAME, "error": MESSAGE}; the next template is then tried. Other kinds are skipped.
// The exit status is 0 unless a file cannot be read or split into YAML documents (2) or no
// FILE is given (2).
//
// The path is Gatekeeper's own, calling the real functions at the versions Gatekeeper v3.23.0
// pins (go.mod: gatekeeper v3.23.0 and the frameworks/constraint commit its go.mod requires;
// Gatekeeper's go.mod has no replace directives to copy):
//
//  1. what the API server stores and serves: the document is decoded into the templates.gatekeeper.sh
//     type of its apiVersion (v1, v1beta1 or v1alpha1) and defaulted with that version's
//     structural schema (frameworks' SetDefaults_ConstraintTemplate, the same defaults the
//     ConstraintTemplate CRD declares: legacySchema true for v1beta1/v1alpha1, false for v1).
//     Unknown fields are dropped, as the API server prunes them. The CRD has no conversion
//     webhook (strategy None), so the object is then read as v1beta1 unchanged, as Gatekeeper's
//     controller reads it (JSON round trip into v1beta1.ConstraintTemplate);
//  2. pkg/controller/constrainttemplate Reconcile: scheme.Convert(v1beta1 -> unversioned
//     templates.ConstraintTemplate) with Gatekeeper's manager scheme (client-go's scheme plus
//     gatekeeper/v3/apis, as main.go builds it);
//  3. cfClient.CreateCRD on a frameworks client built as main.go builds it, with Gatekeeper's
//     target (pkg/target.K8sValidationTarget): metadata checks, target lookup, then
//     crds.CreateSchema(templ, target) (the target's MatchSchema()), crds.CreateCRD and
//     crds.ValidateCRD. No driver is needed for this step;
//  4. scheme.Convert(unversioned CRD -> apiextensions.k8s.io/v1), the proposedCRD the controller
//     creates.
//
// Not included: the controller reference generateCRD adds (controllerutil.SetControllerReference
// to the template, which needs the template's UID from a cluster), and whether the template's
// Rego compiles (AddTemplate, a later step). status is printed as the proposed object carries it
// (the API server ignores it on create). YAML is read as kubectl reads it (sigs.k8s.io/yaml, so
// YAML 1.1 booleans such as an unquoted key `n` or `on` become "false" and "true", as they would
// on the way to the API server).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	templatesv1alpha1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1alpha1"
	templatesv1beta1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1beta1"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	api "github.com/open-policy-agent/gatekeeper/v3/apis"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// Gatekeeper's manager scheme (main.go's init, the parts the constraint template controller uses).
var scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := api.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

type failure struct {
	Template string `json:"template"`
	Error    string `json:"error"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tollgate-crd-oracle FILE...")
		os.Exit(2)
	}
	// As Gatekeeper's main.go: the K8s validation target, audit and webhook enforcement points.
	cf, err := constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.EnforcementPoints(util.AuditEnforcementPoint, util.WebhookEnforcementPoint),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tollgate-crd-oracle: frameworks client:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	status := 0
	for _, file := range os.Args[1:] {
		docs, err := readDocuments(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tollgate-crd-oracle: %s: %v\n", file, err)
			status = 2
			continue
		}
		for _, doc := range docs {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(doc, &head); err != nil {
				// Not an object (a bare scalar or list): not a template.
				continue
			}
			if head.Kind != "ConstraintTemplate" {
				continue
			}
			var line any
			crd, err := oracle(cf, doc)
			if err != nil {
				line = failure{Template: head.Metadata.Name, Error: err.Error()}
			} else {
				line = crd
			}
			b, err := json.Marshal(line)
			if err != nil {
				b, _ = json.Marshal(failure{Template: head.Metadata.Name, Error: "marshal: " + err.Error()})
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	out.Flush()
	os.Exit(status)
}

// readDocuments splits a YAML file into its documents, each as JSON; empty documents are left out.
func readDocuments(file string) ([][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		j, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue // a document of comments only
		}
		docs = append(docs, j)
	}
}

func oracle(cf *constraintclient.Client, doc []byte) (*apiextensionsv1.CustomResourceDefinition, error) {
	// 1. Decoded as the version it is written in, and defaulted with that version's schema.
	obj, gvk, err := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	switch obj.(type) {
	case *templatesv1.ConstraintTemplate, *templatesv1beta1.ConstraintTemplate, *templatesv1alpha1.ConstraintTemplate:
	default:
		return nil, fmt.Errorf("decode: %s is not a templates.gatekeeper.sh ConstraintTemplate", gvk)
	}
	scheme.Default(obj)
	// Served as v1beta1 (conversion strategy None: the same fields under another apiVersion).
	stored, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	ct := &templatesv1beta1.ConstraintTemplate{}
	if err := json.Unmarshal(stored, ct); err != nil {
		return nil, fmt.Errorf("read as v1beta1: %w", err)
	}
	ct.APIVersion = templatesv1beta1.SchemeGroupVersion.String()

	// 2.-4. The controller's Reconcile.
	unversionedCT := &templates.ConstraintTemplate{}
	if err := scheme.Convert(ct, unversionedCT, nil); err != nil {
		return nil, fmt.Errorf("conversion error: %w", err)
	}
	unversionedProposedCRD, err := cf.CreateCRD(context.Background(), unversionedCT)
	if err != nil {
		return nil, err
	}
	proposedCRD := &apiextensionsv1.CustomResourceDefinition{}
	if err := scheme.Convert(unversionedProposedCRD, proposedCRD, nil); err != nil {
		return nil, fmt.Errorf("CRD conversion error: %w", err)
	}
	proposedCRD.APIVersion = apiextensionsv1.SchemeGroupVersion.String()
	proposedCRD.Kind = "CustomResourceDefinition"
	return proposedCRD, nil
}
