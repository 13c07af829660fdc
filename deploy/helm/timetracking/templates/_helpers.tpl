{{- define "tt.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tt.svcname" -}}
{{- printf "%s-%s" (include "tt.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tt.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tt.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "tt.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tt.secretName" -}}
{{- printf "%s-secrets" (include "tt.fullname" .) -}}
{{- end -}}

{{- define "tt.pgSecret" -}}
{{- default (include "tt.secretName" .) .Values.postgresql.existingSecret -}}
{{- end -}}

{{- define "tt.s3Secret" -}}
{{- default (include "tt.secretName" .) .Values.s3.existingSecret -}}
{{- end -}}

{{- define "tt.jwtSecret" -}}
{{- default (include "tt.secretName" .) .Values.gateway.existingJwtSecret -}}
{{- end -}}

{{/* The database URL of one service; the password comes from TT_PG_PASSWORD (set just before it). */}}
{{- define "tt.databaseEnv" -}}
- name: TT_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tt.pgSecret" .root }}
      key: password
- name: {{ upper .name }}_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(TT_PG_PASSWORD)@%s:%v/%s" .root.Values.postgresql.user .root.Values.postgresql.host .root.Values.postgresql.port (get .root.Values.postgresql.databases .name) | quote }}
{{- end -}}

{{/* Every environment variable one service's settings class reads (names match the code). */}}
{{- define "tt.env" -}}
{{- $p := upper .name -}}
{{- $root := .root -}}
- name: {{ $p }}_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: {{ $p }}_LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
- name: {{ $p }}_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .name | quote }}
- name: TT_SERVICE
  value: {{ .name | quote }}
{{- if $root.Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otel.endpoint | quote }}
{{- end }}
{{- if eq .name "gateway" }}
- name: GATEWAY_ENVIRONMENT
  value: "production"
- name: GATEWAY_HTTP_HOST
  value: "0.0.0.0"
- name: GATEWAY_HTTP_PORT
  value: {{ $root.Values.services.gateway.httpPort | quote }}
- name: GATEWAY_WORKERS
  value: {{ $root.Values.gateway.workers | default 1 | quote }}
- name: GATEWAY_METRICS_PORT
  value: {{ $root.Values.metricsPort | quote }}
- name: GATEWAY_REDIS_URL
  value: {{ $root.Values.redis.url | quote }}
{{- range $other := list "projects" "tracking" "reporting" "invoicing" }}
- name: GATEWAY_{{ upper $other }}_TARGET
  value: {{ printf "%s:%v" (include "tt.svcname" (dict "root" $root "name" $other)) $root.Values.grpcPort | quote }}
{{- end }}
- name: GATEWAY_JWT_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "tt.jwtSecret" $root }}
      key: jwt-keys
- name: GATEWAY_JWT_ACTIVE_KID
  value: {{ $root.Values.gateway.jwtActiveKid | quote }}
{{- else }}
- name: {{ $p }}_GRPC_HOST
  value: "0.0.0.0"
- name: {{ $p }}_GRPC_PORT
  value: {{ $root.Values.grpcPort | quote }}
- name: {{ $p }}_METRICS_PORT
  value: {{ $root.Values.metricsPort | quote }}
{{ include "tt.databaseEnv" . }}
{{- end }}
{{- if eq .name "tracking" }}
- name: TRACKING_REDIS_URL
  value: {{ $root.Values.redis.url | quote }}
- name: TRACKING_PROJECTS_TARGET
  value: {{ printf "%s:%v" (include "tt.svcname" (dict "root" $root "name" "projects")) $root.Values.grpcPort | quote }}
{{- end }}
{{- if eq .name "invoicing" }}
- name: INVOICING_PROJECTS_TARGET
  value: {{ printf "%s:%v" (include "tt.svcname" (dict "root" $root "name" "projects")) $root.Values.grpcPort | quote }}
- name: INVOICING_TRACKING_TARGET
  value: {{ printf "%s:%v" (include "tt.svcname" (dict "root" $root "name" "tracking")) $root.Values.grpcPort | quote }}
- name: INVOICING_S3_ENDPOINT_URL
  value: {{ $root.Values.s3.endpointUrl | quote }}
{{- if $root.Values.s3.publicEndpointUrl }}
- name: INVOICING_S3_PUBLIC_ENDPOINT_URL
  value: {{ $root.Values.s3.publicEndpointUrl | quote }}
{{- end }}
- name: INVOICING_S3_BUCKET
  value: {{ $root.Values.s3.bucket | quote }}
- name: INVOICING_S3_REGION
  value: {{ $root.Values.s3.region | quote }}
- name: INVOICING_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tt.s3Secret" $root }}
      key: access-key
- name: INVOICING_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tt.s3Secret" $root }}
      key: secret-key
- name: INVOICING_SELLER_NAME
  value: {{ $root.Values.invoicing.sellerName | quote }}
- name: INVOICING_SELLER_ADDRESS
  value: {{ $root.Values.invoicing.sellerAddress | quote }}
{{- end }}
{{- end -}}
