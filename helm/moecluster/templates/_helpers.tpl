{{/* Names: <release>-moecluster unless the release name already contains the chart name. */}}
{{- define "moecluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pool StatefulSet names append "-<pool>" and pods "-<ordinal>", so leave room under the 63-character label limit. */}}
{{- define "moecluster.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 36 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "moecluster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Headless Service: gives every pod a stable DNS name for Akka remoting and seed discovery. */}}
{{- define "moecluster.headlessName" -}}
{{- printf "%s-headless" (include "moecluster.fullname" .) -}}
{{- end -}}

{{- define "moecluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moecluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "moecluster.labels" -}}
helm.sh/chart: {{ include "moecluster.chart" . }}
{{ include "moecluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: moecluster
{{- end -}}

{{/* Selector labels of one pool; call with (dict "root" $ "name" $name). */}}
{{- define "moecluster.poolSelectorLabels" -}}
{{ include "moecluster.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "moecluster.poolFullname" -}}
{{- printf "%s-%s" (include "moecluster.fullname" .root) .name -}}
{{- end -}}

{{- define "moecluster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "moecluster.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of one pool: the pool's image map overrides the global one; the tag defaults to appVersion. */}}
{{- define "moecluster.image" -}}
{{- $poolImage := .pool.image | default dict -}}
{{- $repository := $poolImage.repository | default .root.Values.image.repository -}}
{{- $tag := $poolImage.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{/* Comma-separated seed node addresses: the first cluster.seedCount pods of cluster.seedPool (the very first one
     bootstraps a new cluster), then pod 0 of every other pool, then extras. The later seeds let a restarted seed
     pool rejoin the running cluster through a surviving pool instead of forming a second cluster on its own. */}}
{{- define "moecluster.seedNodes" -}}
{{- $seedPool := index .Values.pools .Values.cluster.seedPool | default dict -}}
{{- if not $seedPool.enabled -}}
{{- fail (printf "cluster.seedPool %q must name an enabled pool under pools" .Values.cluster.seedPool) -}}
{{- end -}}
{{- if gt (int .Values.cluster.seedCount) (int $seedPool.replicas) -}}
{{- fail (printf "cluster.seedCount (%d) exceeds pools.%s.replicas (%d)" (int .Values.cluster.seedCount) .Values.cluster.seedPool (int $seedPool.replicas)) -}}
{{- end -}}
{{- $fullname := include "moecluster.fullname" . -}}
{{- $headless := include "moecluster.headlessName" . -}}
{{- $seeds := list -}}
{{- range $i := until (int .Values.cluster.seedCount) -}}
{{- $host := printf "%s-%s-%d.%s.%s.svc.%s" $fullname $.Values.cluster.seedPool $i $headless $.Release.Namespace $.Values.clusterDomain -}}
{{- $seeds = append $seeds (printf "akka.tcp://moecluster@%s:%d" $host (int $.Values.ports.remoting)) -}}
{{- end -}}
{{- if .Values.cluster.seedFromEveryPool -}}
{{- range $name, $pool := .Values.pools -}}
{{- if and $pool.enabled (ne $name $.Values.cluster.seedPool) (gt (int $pool.replicas) 0) -}}
{{- $host := printf "%s-%s-0.%s.%s.svc.%s" $fullname $name $headless $.Release.Namespace $.Values.clusterDomain -}}
{{- $seeds = append $seeds (printf "akka.tcp://moecluster@%s:%d" $host (int $.Values.ports.remoting)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- concat $seeds .Values.cluster.extraSeedNodes | join "," -}}
{{- end -}}

{{/* True (non-empty) when the chart must create its Secret. */}}
{{- define "moecluster.needsSecret" -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}yes{{- end -}}
{{- if and .Values.cluster.tls.enabled (not .Values.cluster.tls.existingSecret) -}}yes{{- end -}}
{{- if and .Values.journal.postgres.connectionString (not .Values.journal.postgres.existingSecret) -}}yes{{- end -}}
{{- end -}}

{{/* True (non-empty) when nodes read a PKCS#12 keystore; else a PEM certificate and key (tls.crt, tls.key). */}}
{{- define "moecluster.tlsPkcs12" -}}
{{- if or (eq .Values.cluster.tls.format "pkcs12") (and (not .Values.cluster.tls.existingSecret) .Values.cluster.tls.certificatePfxBase64) -}}yes{{- end -}}
{{- end -}}

{{- define "moecluster.apiKeysSecretName" -}}
{{- .Values.auth.existingSecret | default (include "moecluster.fullname" .) -}}
{{- end -}}

{{- define "moecluster.tlsSecretName" -}}
{{- .Values.cluster.tls.existingSecret | default (include "moecluster.fullname" .) -}}
{{- end -}}

{{- define "moecluster.tlsPasswordSecretName" -}}
{{- .Values.cluster.tls.passwordSecret | default (include "moecluster.tlsSecretName" .) -}}
{{- end -}}

{{- define "moecluster.journalSecretName" -}}
{{- .Values.journal.postgres.existingSecret | default (include "moecluster.fullname" .) -}}
{{- end -}}

{{/* PromQL label matcher for this release's pods (works for ServiceMonitor and annotation-based scraping). */}}
{{- define "moecluster.promSelector" -}}
{{- printf "namespace=\"%s\",pod=~\"%s-.+\"" .Release.Namespace (include "moecluster.fullname" .) -}}
{{- end -}}

{{- define "moecluster.kedaQuery" -}}
{{- .Values.keda.query | default (printf "sum(moecluster_requests_waiting{%s})" (include "moecluster.promSelector" .)) -}}
{{- end -}}
