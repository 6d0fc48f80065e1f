{{/*
Names, labels, images and the pieces both Deployments share.
*/}}

{{- define "vectorpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix; kept at most 40 characters so "-slurm-bridge-metrics" still fits in 63. */}}
{{- define "vectorpipe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vectorpipe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vectorpipe.labels" -}}
helm.sh/chart: {{ include "vectorpipe.chart" . }}
app.kubernetes.io/name: {{ include "vectorpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vectorpipe
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "operator"). */}}
{{- define "vectorpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vectorpipe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vectorpipe.componentLabels" -}}
{{ include "vectorpipe.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* "<fullname>-<component>"; call with (dict "root" $ "component" "slurm-bridge"). */}}
{{- define "vectorpipe.componentName" -}}
{{- printf "%s-%s" (include "vectorpipe.fullname" .root) .component -}}
{{- end -}}

{{/* ServiceAccount name; call with (dict "root" $ "component" "operator" "values" .Values.operator). */}}
{{- define "vectorpipe.serviceAccountName" -}}
{{- if .values.serviceAccount.create -}}
{{- default (include "vectorpipe.componentName" .) .values.serviceAccount.name -}}
{{- else -}}
{{- required (printf "%s.serviceAccount.name is required when serviceAccount.create is false" .component) .values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest; the tag defaults to the appVersion. */}}
{{- define "vectorpipe.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the processes watch: [] means all of them. */}}
{{- define "vectorpipe.watchedNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- if not .Values.rbac.namespaces -}}
{{- fail "rbac.namespaces must list at least one namespace when rbac.scope is namespaced" -}}
{{- end -}}
{{- toJson .Values.rbac.namespaces -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* Scope, log and peering flags shared by both processes; call with (dict "root" $ "component" ... "values" ...). */}}
{{- define "vectorpipe.commonArgs" -}}
{{- $v := .values -}}
{{- if eq (int $v.healthPort) (int $v.metricsPort) -}}
{{- fail "healthPort and metricsPort must differ: both are served by the same process" -}}
{{- end -}}
{{- $namespaces := include "vectorpipe.watchedNamespaces" .root | fromJsonArray -}}
{{- if $namespaces }}
{{- range $namespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --liveness=http://0.0.0.0:{{ $v.healthPort }}/healthz
- --metrics-port={{ $v.metricsPort }}
- --log-format={{ $v.logFormat }}
{{- if $v.peering.enabled }}
- --peering={{ include "vectorpipe.peeringName" . }}
{{- end }}
{{- if ne $v.logLevel "normal" }}
- --{{ $v.logLevel }}
{{- end }}
{{- end -}}

{{/* Pod securityContext: uid/gid 1000 is the images' `vectorpipe` user (images/README.md). */}}
{{- define "vectorpipe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "vectorpipe.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Kopf answers /healthz 200 once its start-up handlers ran, 500 when a probe fails. */}}
{{- define "vectorpipe.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 5
  failureThreshold: 24
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 2
{{- end -}}

{{/* Secret names the bridge may read: the token, the CA bundle, the extras. */}}
{{- define "vectorpipe.slurmSecretNames" -}}
{{- $names := list .Values.slurm.token.secretName -}}
{{- with .Values.slurm.caBundle.secretName }}{{ $names = append $names . }}{{ end -}}
{{- range .Values.slurm.extraSecretNames }}{{ $names = append $names . }}{{ end -}}
{{- toJson ($names | uniq) -}}
{{- end -}}

{{/*
Kopf peering of one component; call with (dict "root" $ "component" "operator" "values" .Values.operator).
"vectorpipe.peeringName": the peering object's name (default <fullname>-<component>).
"vectorpipe.replicas": the replica count, refused above 1 without peering (values.schema.json
refuses it too; this holds with --skip-schema-validation): standalone Kopf replicas would all
handle every event.
*/}}
{{- define "vectorpipe.peeringName" -}}
{{- default (include "vectorpipe.componentName" .) .values.peering.name -}}
{{- end -}}

{{- define "vectorpipe.replicas" -}}
{{- if and (gt (int .values.replicas) 1) (not .values.peering.enabled) -}}
{{- $key := ternary "operator" "slurmBridge" (eq .component "operator") -}}
{{- fail (printf "%s.replicas > 1 needs %s.peering.enabled: without Kopf peering every replica would handle every event" $key $key) -}}
{{- end -}}
{{- int .values.replicas -}}
{{- end -}}
