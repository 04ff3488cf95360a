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
  {{- with include "zastava.webhookCaBundle" .root }}
  caBundle: {{ . }}
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

{{/* The in-cluster URLs: TLS everywhere, Service DNS names (the certificates carry them). */}}
{{- define "zastava.backendUrl" -}}
{{- printf "https://%s-backend.%s.svc:%v" (include "zastava.fullname" .) .Release.Namespace .Values.backend.port -}}
{{- end -}}

{{- define "zastava.authorityUrl" -}}
{{- printf "https://%s-authority.%s.svc:%v" (include "zastava.fullname" .) .Release.Namespace .Values.authority.port -}}
{{- end -}}

{{/*
The configuration every component reads (the ConfigMap's zastava.yaml): .Values.config over the chart's
defaults (backend and Authority URLs, the observer's metrics address), then what the chart decides itself
(mode follows which components are enabled; backendServer follows backend.*: OpToks, TLS, the store).
*/}}
{{- define "zastava.config" -}}
{{- $sqlite := eq .Values.backend.store.type "sqlite" -}}
{{- $defaults := dict "backend" (dict "baseAddress" (include "zastava.backendUrl" .)) -}}
{{- if .Values.authority.enabled -}}
{{- $_ := set $defaults "runtime" (dict "authority" (dict "issuer" (include "zastava.authorityUrl" .))) -}}
{{- end -}}
{{- $_ := set $defaults "observer" (dict "listen" (printf "0.0.0.0:%v" .Values.observer.metricsPort)) -}}
{{- $_ := set $defaults "security" (dict "mounts" (dict
    "containerdSock" (printf "%s:ro" .Values.observer.criSocket)
    "proc" "/proc:/host/proc:ro"
    "runtimeState" (printf "%s:ro" .Values.observer.runtimeState))) -}}
{{- $server := dict
    "listen" (printf "0.0.0.0:%v" .Values.backend.port)
    "auth" "optok"
    "tlsCertFile" "/etc/zastava/tls/tls.crt"
    "tlsKeyFile" "/etc/zastava/tls/tls.key"
    "clientCaFile" "/etc/zastava/tls/ca.crt"
    "publicBaseUrl" (include "zastava.backendUrl" .)
-}}
{{- if $sqlite -}}
{{- $_ := set $server "store" (printf "sqlite:///%s" .Values.backend.store.sqlitePath) -}}
{{- end -}}
{{- $forced := dict
    "mode" (dict "observer" .Values.observer.enabled "webhook" .Values.webhook.enabled)
    "backendServer" $server
-}}
{{- $user := deepCopy (default (dict) .Values.config.zastava) -}}
{{- $config := mustMergeOverwrite $defaults $user $forced -}}
{{- if not (dig "runtime" "authority" "issuer" "" $config) -}}
{{- fail "config.zastava.runtime.authority.issuer is required when authority.enabled is false (your OIDC provider's URL)" -}}
{{- end -}}
{{- toYaml (dict "zastava" $config) -}}
{{- end -}}

{{/*
Generated secret material, made once per render and memoised in .Values (shared by every template): a CA, the
serving certificates (backend, Authority, webhook) and the client certificates (observer, webhook) it signs,
and the Authority client secrets. Existing Secrets (found with `lookup` on install/upgrade) are reused, so an
upgrade keeps the CA, the certificates and the client secrets.
*/}}
{{- define "zastava.generated" -}}
{{- if not (hasKey .Values "_zastavaGenerated") -}}
{{- $fullname := include "zastava.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $days := int .Values.tlsValidityDays -}}
{{- $out := dict "certs" (dict) "clients" (dict) -}}
{{- if and .Values.generateSecrets (not .Values.certManager.enabled) -}}
{{- $caSecret := lookup "v1" "Secret" $ns (printf "%s-ca" $fullname) -}}
{{- $ca := dict -}}
{{- if and $caSecret (hasKey (default (dict) $caSecret.data) "tls.crt") -}}
{{- $ca = buildCustomCert (index $caSecret.data "tls.crt") (index $caSecret.data "tls.key") -}}
{{- else -}}
{{- /* ECDSA P-256: seven RSA-2048 keys made every render take ~5 s */ -}}
{{- $ca = genCAWithKey (printf "%s-ca" $fullname) $days (genPrivateKey "ecdsa") -}}
{{- end -}}
{{- $_ := set $out "ca" (dict "crt" $ca.Cert "key" $ca.Key) -}}
{{- range $name, $service := dict "backend" "backend" "authority" "authority" "webhook" "webhook" "observer" "" "webhook-client" "" "operator" "" -}}
{{- $existing := lookup "v1" "Secret" $ns (printf "%s-%s-tls" $fullname $name) -}}
{{- $data := default (dict) (and $existing $existing.data) -}}
{{- if and (hasKey $data "tls.crt") (eq (index $data "ca.crt" | default "" | b64dec) $ca.Cert) -}}
{{- $_ := set $out.certs $name (dict "crt" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec)) -}}
{{- else -}}
{{- $dns := list -}}
{{- $cn := printf "system:zastava:%s" $name -}}
{{- if $service -}}
{{- $host := printf "%s-%s" $fullname $service -}}
{{- $cn = printf "%s.%s.svc" $host $ns -}}
{{- $dns = list $host (printf "%s.%s" $host $ns) (printf "%s.%s.svc" $host $ns) (printf "%s.%s.svc.cluster.local" $host $ns) -}}
{{- end -}}
{{- $cert := genSignedCertWithKey $cn nil $dns $days $ca (genPrivateKey "ecdsa") -}}
{{- $_ := set $out.certs $name (dict "crt" $cert.Cert "key" $cert.Key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.generateSecrets -}}
{{- $existing := lookup "v1" "Secret" $ns (printf "%s-clients" $fullname) -}}
{{- $data := default (dict) (and $existing $existing.data) -}}
{{- range $client := list "observer" "webhook" "operator" -}}
{{- $_ := set $out.clients $client (index $data $client | default "" | b64dec | default (randAlphaNum 43)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "_zastavaGenerated" $out -}}
{{- end -}}
{{- toYaml (get .Values "_zastavaGenerated") -}}
{{- end -}}

{{/* The CA bundle (base64) the API server uses to verify the webhook, when the chart knows it. */}}
{{- define "zastava.webhookCaBundle" -}}
{{- $generated := include "zastava.generated" . | fromYaml -}}
{{- if .Values.certManager.enabled -}}
{{- else if $generated.ca -}}
{{- $generated.ca.crt | b64enc -}}
{{- else -}}
{{- required "webhook.tls.caBundle is required when the certificates are yours (generateSecrets false, certManager.enabled false)" .Values.webhook.tls.caBundle -}}
{{- end -}}
{{- end -}}

{{/*
A component's client credentials (observer or webhook). Called with (dict "root" $ "component" "observer"
"tlsSecret" "…-observer-tls"). Its own Secret when credentials.secretName is set; otherwise the chart's: the
client secret (from <release>-clients, when the chart's Authority issues the tokens) and the client
certificate, key and CA, projected into /etc/zastava/credentials.
*/}}
{{- define "zastava.clientCredentialsEnv" -}}
{{- $creds := (index .root.Values .component).credentials -}}
{{- if $creds.secretName -}}
{{- include "zastava.credentialsEnv" $creds | trim -}}
{{- else -}}
{{- if .root.Values.authority.enabled }}
- {name: ZASTAVA_RUNTIME__AUTHORITY__CLIENTSECRETPATH, value: /etc/zastava/credentials/client-secret}
{{- end }}
- {name: ZASTAVA_RUNTIME__AUTHORITY__CLIENTCERTPATH, value: /etc/zastava/credentials/tls.crt}
- {name: ZASTAVA_RUNTIME__AUTHORITY__CLIENTKEYPATH, value: /etc/zastava/credentials/tls.key}
- {name: ZASTAVA_RUNTIME__AUTHORITY__CABUNDLEPATH, value: /etc/zastava/credentials/ca.crt}
{{- end -}}
{{- end -}}

{{- define "zastava.clientCredentialsVolume" -}}
{{- $creds := (index .root.Values .component).credentials -}}
{{- if $creds.secretName -}}
{{- include "zastava.credentialsVolume" $creds -}}
{{- else -}}
- name: credentials
  projected:
    defaultMode: 0440
    sources:
      {{- if .root.Values.authority.enabled }}
      - secret:
          name: {{ include "zastava.fullname" .root }}-clients
          items: [{key: {{ .component }}, path: client-secret}]
      {{- end }}
      - secret:
          name: {{ .tlsSecret }}
          items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}, {key: ca.crt, path: ca.crt}]
{{- end -}}
{{- end -}}

{{- /* Egress every component needs: DNS. */}}
{{- define "zastava.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}
{{- define "zastava.cidrEgress" -}}
- to:
    {{- range .cidrs }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}
