{{/*
One controller Deployment. Call with (dict "root" $ "component" "operator"
"values" .Values.operator "args" (list ...extra flags) "env" (list ...EnvVar)).
Standalone (the default): one replica and the Recreate strategy, since two
standalone Kopf processes at once would both handle every event. With Kopf
peering (values.peering.enabled): `replicas` pods started with --peering, each
with a random priority and its pod name as its peering identity (POD_ID), and a
RollingUpdate that keeps a replica running (a new pod stands by, or takes over,
until the old one is gone; peering decides which one works).
*/}}
{{- define "vectorpipe.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "vectorpipe.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "vectorpipe.componentLabels" . | nindent 4 }}
spec:
  replicas: {{ include "vectorpipe.replicas" . }}
  revisionHistoryLimit: 3
  strategy:
    {{- if $v.peering.enabled }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
    {{- else }}
    type: Recreate
    {{- end }}
  selector:
    matchLabels:
      {{- include "vectorpipe.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vectorpipe.componentLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        kubectl.kubernetes.io/default-container: {{ .component }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "vectorpipe.serviceAccountName" . }}
      automountServiceAccountToken: true
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "vectorpipe.podSecurityContext" . | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "vectorpipe.image" (dict "root" $root "image" $v.image) | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- include "vectorpipe.commonArgs" . | trim | nindent 12 }}
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
            {{- range $v.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            # Python writes nothing outside /tmp (read-only root filesystem).
            - name: HOME
              value: /tmp
            {{- if $v.peering.enabled }}
            # Kopf's peering identity: the pod name shows which replica is active.
            - name: POD_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- end }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: health
              containerPort: {{ $v.healthPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $v.metricsPort }}
              protocol: TCP
          {{- include "vectorpipe.probes" . | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "vectorpipe.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
