{{/*
The RBAC rules, one list per component, from what the code calls
(operator/src/vectorpipe_operator/k8s.py, slurm-bridge/src/slurm_bridge/k8s.py)
plus what Kopf does on its own: it watches and patches (annotations, finalizer)
the resources it has handlers for, and posts Events. Namespaced rules go into a
ClusterRole (scope cluster) or a Role per watched namespace (scope namespaced);
the cluster-scoped reads Kopf's resource scanning makes are always a ClusterRole.
*/}}

{{- define "vectorpipe.operatorRules" -}}
- apiGroups: ["vectorpipe.io"]
  resources: ["vectorpipelines"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["vectorpipe.io"]
  resources: ["vectorpipelines/status"]
  verbs: ["get", "update", "patch"]
# blockOwnerDeletion on the children's owner references needs update on the owner's finalizers.
- apiGroups: ["vectorpipe.io"]
  resources: ["vectorpipelines/finalizers"]
  verbs: ["update"]
# delete: a new spec.runId ends the previous run's children, and a Ray pod that
# cannot start ends the run by deleting its RayJob (KubeRay then removes the
# RayCluster and its pods).
- apiGroups: ["vectorpipe.io"]
  resources: ["slurmjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["ray.io"]
  resources: ["rayjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "delete"]
# Stage 1's Ray pods (KubeRay's, labelled from our templates): watched, and
# listed by pipeline to tell a container that cannot start. Read-only.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
{{ include "vectorpipe.eventRules" . }}
{{- end -}}

{{- define "vectorpipe.bridgeRules" -}}
- apiGroups: ["vectorpipe.io"]
  resources: ["slurmjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["vectorpipe.io"]
  resources: ["slurmjobs/status"]
  verbs: ["patch"]
# Only the named token / CA bundle Secrets, read on every slurmrestd request
# (so a rotated token needs no restart). No list, no watch, no other name.
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ include "vectorpipe.slurmSecretNames" . }}
  verbs: ["get"]
{{ include "vectorpipe.eventRules" . }}
{{- end -}}

{{- define "vectorpipe.eventRules" -}}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/*
Kopf peering (added only with values.peering.enabled): list and watch the peering kind
(ClusterKopfPeering in cluster scope, KopfPeering in each watched namespace),
get and patch only the component's own peering object (Kopf writes its
keep-alive into its status; the kinds have no status subresource). Call with
(dict "root" $ "component" ... "values" ... "resource" "clusterkopfpeerings").
*/}}
{{- define "vectorpipe.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: [{{ include "vectorpipe.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end -}}

{{/* Kopf's scanning: CRDs always; namespaces only when it must resolve a namespace list. */}}
{{- define "vectorpipe.scanningRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if eq .Values.rbac.scope "namespaced" }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}

{{/*
RBAC objects of one component. Call with
(dict "root" $ "component" "operator" "values" .Values.operator "rules" "vectorpipe.operatorRules").
*/}}
{{- define "vectorpipe.rbac" -}}
{{- $root := .root -}}
{{- $name := include "vectorpipe.componentName" . -}}
{{- $sa := include "vectorpipe.serviceAccountName" . -}}
{{- $namespaces := include "vectorpipe.watchedNamespaces" $root | fromJsonArray -}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}-scanning
  labels:
    {{- include "vectorpipe.componentLabels" . | nindent 4 }}
rules:
  {{- include "vectorpipe.scanningRules" $root | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}-scanning
  labels:
    {{- include "vectorpipe.componentLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}-scanning
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $root.Release.Namespace }}
{{- if not $namespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "vectorpipe.componentLabels" . | nindent 4 }}
rules:
  {{- include .rules $root | nindent 2 }}
  {{- if .values.peering.enabled }}
  {{- include "vectorpipe.peeringRules" (merge (dict "resource" "clusterkopfpeerings") .) | nindent 2 }}
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "vectorpipe.componentLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $root.Release.Namespace }}
{{- else }}
{{- range $ns := $namespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "vectorpipe.componentLabels" $ | nindent 4 }}
rules:
  {{- include $.rules $root | nindent 2 }}
  {{- if $.values.peering.enabled }}
  {{- include "vectorpipe.peeringRules" (merge (dict "resource" "kopfpeerings") $) | nindent 2 }}
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "vectorpipe.componentLabels" $ | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
{{- end }}
{{- end -}}
