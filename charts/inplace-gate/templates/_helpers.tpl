{{/* The labels every object has in the kustomize base, and Helm's own (left out of selectors). */}}
{{- define "inplace-gate.labels" -}}
app.kubernetes.io/name: inplace-gate
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* A component's selector, as in the base: no instance label, so a selector never changes. */}}
{{- define "inplace-gate.selector" -}}
app.kubernetes.io/name: inplace-gate
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "inplace-gate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* image: and imagePullPolicy: of a container. */}}
{{- define "inplace-gate.containerImage" -}}
image: {{ include "inplace-gate.image" . }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* The pod security context of every pod: non-root, RuntimeDefault seccomp (restricted profile). */}}
{{- define "inplace-gate.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "inplace-gate.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: { drop: ["ALL"] }
{{- end }}

{{/* Scheduling shared by both Deployments: priority, spread, pull secrets, node placement. */}}
{{- define "inplace-gate.scheduling" -}}
{{- $root := .root -}}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $spread := list }}
{{- range $key, $topology := dict "host" "kubernetes.io/hostname" "zone" "topology.kubernetes.io/zone" }}
{{- $s := index $root.Values.topologySpread $key }}
{{- if $s.enabled }}
{{- $spread = append $spread (dict "maxSkew" $s.maxSkew "topologyKey" $topology "whenUnsatisfiable" $s.whenUnsatisfiable "labelSelector" (dict "matchLabels" (include "inplace-gate.selector" $.component | fromYaml))) }}
{{- end }}
{{- end }}
{{- with $spread }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A hook resource of the release Job: made before it (weight), removed once it succeeded. */}}
{{- define "inplace-gate.hookAnnotations" -}}
helm.sh/hook: {{ .hook }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
