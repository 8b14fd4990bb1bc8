{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding the serving certificate (tls.crt/tls.key). */}}
{{- define "tollgate.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.secret.name is required when tls.mode is secret" .Values.tls.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "tollgate.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Exempt namespaces, one list for the webhook's namespaceSelector and tollgate's --exempt-namespace
flags so the two cannot disagree: the release namespace (tollgate must be able to start), the
Kubernetes system namespaces (the cluster must be able to heal itself), then exemptNamespaces,
deduplicated.
*/}}
{{- define "tollgate.exemptNamespaces" -}}
{{- $all := concat (list .Release.Namespace "kube-system" "kube-public" "kube-node-lease") .Values.exemptNamespaces | uniq }}
{{- toJson $all }}
{{- end }}

{{/*
PromQL label matchers of tollgate's series, for the alerting rules: prometheusRule.selector, or
the labels the ServiceMonitor's targets get (job is the Service's name), then the extra matchers
given after the root context, all inside one pair of braces: (list . `a="b"`) gives
job="...",namespace="...",a="b" in braces.
*/}}
{{- define "tollgate.promSelector" -}}
{{- $root := index . 0 }}
{{- $base := $root.Values.prometheusRule.selector | default (printf "job=%q,namespace=%q" (include "tollgate.fullname" $root) $root.Release.Namespace) }}
{{- $all := prepend (rest .) $base | compact }}
{{- printf "{%s}" (join "," $all) }}
{{- end }}

{{/* Seconds in a duration of one number and a unit, ms, s, m or h (cluster.audit.interval). */}}
{{- define "tollgate.durationSeconds" -}}
{{- $n := regexFind "^[0-9]+" . | float64 }}
{{- $unit := regexFind "[a-z]+$" . }}
{{- $per := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $unit | required (printf "not a duration of ms, s, m or h: %q" .) }}
{{- mulf $n $per }}
{{- end }}
