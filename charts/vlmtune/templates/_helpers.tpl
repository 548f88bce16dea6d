{{/*
Chart name, cut to the 63 characters of a label value.
*/}}
{{- define "vlmtune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every namespaced object and of the cluster-scoped RBAC objects.
*/}}
{{- define "vlmtune.fullname" -}}
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

{{- define "vlmtune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "vlmtune.labels" -}}
helm.sh/chart: {{ include "vlmtune.chart" . }}
{{ include "vlmtune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vlmtune
{{- end }}

{{/*
Labels that select the operator pod (also the NetworkPolicy peer of the operator).
*/}}
{{- define "vlmtune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vlmtune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vlmtune.operatorSelectorLabels" -}}
{{ include "vlmtune.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "vlmtune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vlmtune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vlmtune.runtimeConfigMapName" -}}
{{- printf "%s-runtime" (include "vlmtune.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
`repository@digest`, or `repository:tag` with the tag defaulting to the chart's appVersion. Argument: (list $image $root).
*/}}
{{- define "vlmtune.image" -}}
{{- $image := index . 0 }}{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches: the tenant namespaces (it refuses jobs anywhere else), one per line.
*/}}
{{- define "vlmtune.watchNamespaces" -}}
{{- $seen := list }}
{{- range .Values.tenants }}{{ $seen = append $seen .namespace }}{{ end }}
{{- range ($seen | uniq) }}
{{ . }}
{{- end }}
{{- end }}

{{/*
A tenant's output prefix as a folder without its trailing slash. Argument: a tenant.
*/}}
{{- define "vlmtune.outputFolder" -}}
{{- trimSuffix "/" .outputPrefix }}
{{- end }}

{{/*
Node autoscaler of a node pool: its own `autoscaling.provider`, else the top-level one. Argument: (list $pool $root).
*/}}
{{- define "vlmtune.poolProvider" -}}
{{- $pool := index . 0 }}{{- $root := index . 1 }}
{{- dig "autoscaling" "provider" "" $pool | default $root.Values.autoscaling.provider }}
{{- end }}

{{/*
Name of the Karpenter NodePool that provides a node pool. Argument: a node pool.
*/}}
{{- define "vlmtune.karpenterNodePoolName" -}}
{{- default .name (dig "autoscaling" "karpenterNodePool" "" .) }}
{{- end }}

{{/*
Node selector of a node pool: its own, plus `karpenter.sh/nodepool` when Karpenter provides the nodes.
Argument: (list $pool $root). Output: YAML mapping (possibly `{}`).
*/}}
{{- define "vlmtune.poolNodeSelector" -}}
{{- $pool := index . 0 }}{{- $root := index . 1 }}
{{- $selector := deepCopy (default dict $pool.nodeSelector) }}
{{- if eq (include "vlmtune.poolProvider" .) "karpenter" }}
{{- $_ := set $selector "karpenter.sh/nodepool" (include "vlmtune.karpenterNodePoolName" $pool) }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/*
Node taints that a pool's tolerations tolerate, as a YAML list: what its autoscaled nodes must carry so that only
tolerating pods land there. Tolerations without a key (tolerate everything) name no taint; one without an effect
tolerates NoSchedule. Argument: a node pool.
*/}}
{{- define "vlmtune.poolTaints" -}}
{{- $taints := list }}
{{- range .tolerations }}
{{- if .key }}
{{- $taint := dict "key" .key "effect" (default "NoSchedule" .effect) }}
{{- if and (eq (default "Equal" .operator) "Equal") .value }}{{ $_ := set $taint "value" .value }}{{ end }}
{{- $taints = append $taints $taint }}
{{- end }}
{{- end }}
{{- toYaml $taints }}
{{- end }}

{{/*
Accelerator resource names of all node pools, sorted and unique (the GPU part of coveredResources).
*/}}
{{- define "vlmtune.gpuResources" -}}
{{- $names := list }}
{{- range .Values.nodePools }}
{{- $names = append $names (default "nvidia.com/gpu" .gpuResource) }}
{{- end }}
{{- toJson ($names | uniq | sortAlpha) }}
{{- end }}

{{/*
Kueue flavor names in admission order: the CPU flavor, then the node pools by name.
*/}}
{{- define "vlmtune.flavorNames" -}}
{{- $names := list .Values.queues.cpuFlavor.name }}
{{- range .Values.nodePools }}{{ $names = append $names .name }}{{ end }}
{{- toJson $names }}
{{- end }}

{{/*
Node pools by name, as JSON (`include "vlmtune.poolsByName" . | fromJson`).
*/}}
{{- define "vlmtune.poolsByName" -}}
{{- $pools := dict }}
{{- range .Values.nodePools }}{{ $_ := set $pools .name . }}{{ end }}
{{- toJson $pools }}
{{- end }}

{{/*
Fail early, with the value path, on what the schema cannot say.
*/}}
{{- define "vlmtune.validate" -}}
{{- if not .Values.tenants }}
{{- fail "tenants: add at least one tenant; the operator runs jobs only in tenant namespaces (each has a queue, an output prefix and admission policies)" }}
{{- end }}
{{- if and (eq .Values.runtime.rayAuthMode "disabled") .Values.admissionPolicy.enabled .Values.admissionPolicy.requireTokenAuth }}
{{- fail "runtime.rayAuthMode: disabled, but admissionPolicy.requireTokenAuth denies every RayJob without Ray token auth, so no job could start; set admissionPolicy.requireTokenAuth=false, or keep rayAuthMode: token" }}
{{- end }}
{{- include "vlmtune.validateTenants" . }}
{{- $flavors := include "vlmtune.flavorNames" . | fromJsonArray }}
{{- $pools := include "vlmtune.poolsByName" . | fromJson }}
{{- range $index, $pool := .Values.nodePools }}
{{- if eq $pool.name $.Values.queues.cpuFlavor.name }}
{{- fail (printf "nodePools[%d].name: %q is also queues.cpuFlavor.name; ResourceFlavor names must be unique" $index $pool.name) }}
{{- end }}
{{- if ne (len (without $flavors $pool.name)) (sub (len $flavors) 1) }}
{{- fail (printf "nodePools[%d].name: %q names another node pool too" $index $pool.name) }}
{{- end }}
{{- with $pool.autoscaling }}
{{- if and (hasKey . "minNodes") (hasKey . "maxNodes") (gt (int .minNodes) (int .maxNodes)) }}
{{- fail (printf "nodePools[%d].autoscaling.minNodes: %v is more than maxNodes %v" $index .minNodes .maxNodes) }}
{{- end }}
{{- end }}
{{- include "vlmtune.validateKarpenterPool" (list $index $pool $) }}
{{- end }}
{{- with .Values.runtime.defaultNodePool }}
{{- if not (hasKey $pools .) }}
{{- fail (printf "runtime.defaultNodePool: %q is not a node pool (known: %s)" . (keys $pools | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- $classes := list }}
{{- range $index, $class := .Values.queues.priorityClasses }}
{{- if has $class.name $classes }}
{{- fail (printf "queues.priorityClasses[%d].name: %q names another priority class too" $index $class.name) }}
{{- end }}
{{- $classes = append $classes $class.name }}
{{- end }}
{{- $tenantNames := list }}{{- $tenantNamespaces := list }}
{{- range $index, $tenant := .Values.tenants }}
{{- if has $tenant.name $tenantNames }}
{{- fail (printf "tenants[%d].name: %q is used by another tenant" $index $tenant.name) }}
{{- end }}
{{- if has $tenant.namespace $tenantNamespaces }}
{{- fail (printf "tenants[%d].namespace: %q belongs to another tenant; one LocalQueue name per namespace" $index $tenant.namespace) }}
{{- end }}
{{- $tenantNames = append $tenantNames $tenant.name }}{{- $tenantNamespaces = append $tenantNamespaces $tenant.namespace }}
{{- range $flavor, $quotas := (default dict $tenant.quotas) }}
{{- if not (has $flavor $flavors) }}
{{- fail (printf "tenants[%d].quotas.%s: no flavor of that name (known: %s)" $index $flavor (join ", " $flavors)) }}
{{- end }}
{{- if and (eq $flavor $.Values.queues.cpuFlavor.name) (hasKey $quotas "gpus") }}
{{- fail (printf "tenants[%d].quotas.%s.gpus: the CPU flavor has no accelerators; give GPU quota in a node pool flavor" $index $flavor) }}
{{- end }}
{{- range $resource, $quota := $quotas }}
{{- if and (hasKey $quota "lendingLimit") (eq $resource "gpus") (gt (float64 $quota.lendingLimit) (float64 $quota.nominal)) }}
{{- fail (printf "tenants[%d].quotas.%s.gpus.lendingLimit: %v is more than the nominal quota %v" $index $flavor $quota.lendingLimit $quota.nominal) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Nominal GPUs promised to the tenants must fit in the pool at its largest. */}}
{{- range $pool := .Values.nodePools }}
{{- $name := $pool.name }}
{{- $max := dig "autoscaling" "maxNodes" nil $pool }}
{{- if and (not (kindIs "invalid" $max)) $pool.gpusPerNode }}
{{- $capacity := mul (int $max) (int $pool.gpusPerNode) }}
{{- $promised := 0 }}
{{- range $.Values.tenants }}
{{- $promised = add $promised (int (dig "quotas" $name "gpus" "nominal" 0 .)) }}
{{- end }}
{{- if gt (int $promised) (int $capacity) }}
{{- fail (printf "tenants[*].quotas.%s.gpus.nominal: the tenants are promised %d GPUs but node pool %s holds at most %d (maxNodes %v x gpusPerNode %v)" $name $promised $name $capacity $max $pool.gpusPerNode) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What tenants need that the schema cannot say: storage no other tenant can reach, and a default queue that exists.
*/}}
{{- define "vlmtune.validateTenants" -}}
{{- range $index, $tenant := .Values.tenants }}
{{- $queue := default $.Values.queues.localQueueName $tenant.localQueueName }}
{{- if and $.Values.runtime.defaultQueue (ne $queue $.Values.runtime.defaultQueue) }}
{{- fail (printf "tenants[%d].localQueueName: %q differs from runtime.defaultQueue %q, so jobs without a queue label in %s would wait for a LocalQueue that does not exist; make them equal, or set runtime.defaultQueue to \"\" (jobs without a label then run without Kueue)" $index $queue $.Values.runtime.defaultQueue $tenant.namespace) }}
{{- end }}
{{- $mine := include "vlmtune.outputFolder" $tenant }}
{{- range $other, $peer := $.Values.tenants }}
{{- $theirs := include "vlmtune.outputFolder" $peer }}
{{- if and (ne $index $other) (or (eq $mine $theirs) (hasPrefix (printf "%s/" $theirs) $mine)) }}
{{- fail (printf "tenants[%d].outputPrefix: %q lies inside tenants[%d].outputPrefix %q, so tenant %s could write where tenant %s writes; give every tenant its own prefix" $index $tenant.outputPrefix $other $peer.outputPrefix $peer.name $tenant.name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What a node pool's autoscaler needs that the schema cannot say. Argument: (list $index $pool $root).
*/}}
{{- define "vlmtune.validateKarpenterPool" -}}
{{- $index := index . 0 }}{{- $pool := index . 1 }}{{- $root := index . 2 }}
{{- $scaling := default dict $pool.autoscaling }}
{{- $provider := include "vlmtune.poolProvider" (list $pool $root) }}
{{- if ne $provider "karpenter" }}
{{- range $key := list "instanceTypes" "capacityTypes" "weight" "karpenterNodePool" }}
{{- if hasKey $scaling $key }}
{{- fail (printf "nodePools[%d].autoscaling.%s: only pools that Karpenter provides take it (this pool's provider is %s); size a cluster-autoscaler node group in the cloud provider instead" $index $key $provider) }}
{{- end }}
{{- end }}
{{- else }}
{{- if gt (int (default 0 $scaling.minNodes)) 0 }}
{{- fail (printf "nodePools[%d].autoscaling.minNodes: %v, but a Karpenter NodePool keeps no minimum number of nodes; set it to 0, or use cluster-autoscaler for a warm pool" $index $scaling.minNodes) }}
{{- end }}
{{- if $root.Values.autoscaling.karpenter.createNodePools }}
{{- if not (hasKey $scaling "maxNodes") }}
{{- fail (printf "nodePools[%d].autoscaling.maxNodes: required for a Karpenter pool; maxNodes x gpusPerNode becomes the NodePool's GPU limit" $index) }}
{{- end }}
{{- if not $pool.gpusPerNode }}
{{- fail (printf "nodePools[%d].gpusPerNode: required (at least 1) for a Karpenter pool; maxNodes x gpusPerNode becomes the NodePool's GPU limit" $index) }}
{{- end }}
{{- if not $root.Values.autoscaling.karpenter.nodeClassRef.name }}
{{- fail (printf "autoscaling.karpenter.nodeClassRef.name: node pool %q uses karpenter; name the existing %s its NodePool launches nodes from (or set autoscaling.karpenter.createNodePools=false and create the NodePools yourself)" $pool.name $root.Values.autoscaling.karpenter.nodeClassRef.kind) }}
{{- end }}
{{- if hasKey (default dict $pool.nodeSelector) "karpenter.sh/nodepool" }}
{{- fail (printf "nodePools[%d].nodeSelector: leave out karpenter.sh/nodepool; the chart adds it from autoscaling.karpenterNodePool" $index) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
One ClusterQueue resource quota entry. Argument: (dict "name" $resourceName "quota" $quotaOrNil).
*/}}
{{- define "vlmtune.quota" -}}
- name: {{ .name | quote }}
  nominalQuota: {{ dig "nominal" 0 (default dict .quota) | toString | quote }}
{{- with .quota }}
{{- if hasKey . "borrowingLimit" }}
  borrowingLimit: {{ .borrowingLimit | toString | quote }}
{{- end }}
{{- if hasKey . "lendingLimit" }}
  lendingLimit: {{ .lendingLimit | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
