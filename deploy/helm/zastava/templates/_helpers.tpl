{{- define "zastava.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zastava.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "zastava.labels" -}}
app.kubernetes.io/name: {{ include "zastava.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "zastava.selector" -}}
app.kubernetes.io/name: {{ include "zastava.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "zastava.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "zastava.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zastava.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Restricted securityContext for the non-root components (webhook, backend, authority). */}}
{{- define "zastava.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "zastava.configVolume" -}}
- name: config
  configMap:
    name: {{ include "zastava.fullname" . }}-config
{{- end -}}

{{/* What both ValidatingWebhookConfiguration entries share (all but name, failurePolicy, namespaceSelector). */}}
{{- define "zastava.webhookEntry" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods", "pods/ephemeralcontainers"]
    scope: Namespaced
clientConfig:
  service:
    namespace: {{ .root.Release.Namespace }}
    name: {{ .fullname }}-webhook
    path: /admit
    port: 443
  {{- if and (not .root.Values.webhook.tls.certManager.enabled) .root.Values.webhook.tls.caBundle }}
  caBundle: {{ .root.Values.webhook.tls.caBundle }}
  {{- end }}
{{- end }}

{{/*
Authority client credentials of one component (observer or webhook), from a Secret mounted read-only at
/etc/zastava/credentials; each named key sets the matching runtime.authority.*Path through the environment.
Called with the component's `credentials` values, only when secretName is set.
*/}}
{{- define "zastava.credentialsEnv" -}}
{{- range $key, $env := dict "clientSecret" "CLIENTSECRETPATH" "privateKeyJwt" "PRIVATEKEYJWTPATH" "clientCert" "CLIENTCERTPATH" "clientKey" "CLIENTKEYPATH" "caBundle" "CABUNDLEPATH" }}
{{- with (get $ $key) }}
- name: ZASTAVA_RUNTIME__AUTHORITY__{{ $env }}
  value: /etc/zastava/credentials/{{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "zastava.credentialsMount" -}}
- {name: credentials, mountPath: /etc/zastava/credentials, readOnly: true}
{{- end -}}

{{- define "zastava.credentialsVolume" -}}
- name: credentials
  secret: {secretName: {{ .secretName }}, defaultMode: 0440}
{{- end -}}
