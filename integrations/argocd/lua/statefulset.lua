-- inplace-gate: Argo CD health for apps/StatefulSet. While inplace-gate rolls a
-- StatefulSet in place it holds rollingUpdate.partition at replicas, which Argo
-- CD's built-in check reads as "partitioned roll out complete" before any pod
-- changed; here the rollout is Progressing until the watcher ends it, Degraded
-- once it stalled, Suspended while inplace-gate.dev/partition holds the rest.
-- Every other StatefulSet reads as the built-in check reads it (gitops-engine
-- pkg/health, getAppsv1StatefulSetHealth).
local hs = {}
local spec = obj.spec or {}
local status = obj.status or {}
local strategy = spec.updateStrategy or {}
local replicas = spec.replicas
local ready = status.readyReplicas or 0
local updated = status.updatedReplicas or 0

if (status.observedGeneration or 0) == 0 or (obj.metadata.generation or 0) > status.observedGeneration then
  hs.status = "Progressing"
  hs.message = "Waiting for statefulset spec update to be observed..."
  return hs
end

local trouble, rollout = inplaceTrouble(obj)
if trouble ~= nil then return trouble end

if rollout ~= nil then
  -- Healthy only once the watcher has proven every pod and ended the rollout (the state is gone):
  -- the StatefulSet's counts can read all updated and Ready while the last pod is still restarting.
  local held = partitionAnnotation(obj)
  local userPartition = tonumber(rollout.partition) or 0
  local want = (replicas or 1) - math.max(userPartition, held)
  if want < 0 then want = 0 end
  if held > userPartition and updated >= want and ready >= (replicas or 1) then
    -- Held by the user's inplace-gate.dev/partition: the pods past it are done, the rest wait for it.
    hs.status = "Suspended"
    hs.message = "In-place rollout held at inplace-gate.dev/partition=" .. held .. ": " .. updated .. " pods updated, " .. held .. " kept on the old images until it is lowered"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "In-place rollout to " .. describeImages(rollout.images) .. ": " .. updated .. " out of " .. want .. " pods updated, " .. ready .. " of " .. (replicas or 1) .. " ready"
  return hs
end

-- No in-place rollout: Argo CD's own rules.
if replicas ~= nil and ready < replicas then
  hs.status = "Progressing"
  hs.message = "Waiting for " .. (replicas - ready) .. " pods to be ready..."
  return hs
end
if strategy.type == "RollingUpdate" and strategy.rollingUpdate ~= nil then
  local p = strategy.rollingUpdate.partition
  if replicas ~= nil and p ~= nil and updated < replicas - p then
    hs.status = "Progressing"
    hs.message = "Waiting for partitioned roll out to finish: " .. updated .. " out of " .. (replicas - p) .. " new pods have been updated..."
    return hs
  end
  hs.status = "Healthy"
  hs.message = "partitioned roll out complete: " .. updated .. " new pods have been updated..."
  return hs
end
if strategy.type == "OnDelete" then
  hs.status = "Healthy"
  hs.message = "statefulset has " .. ready .. " ready pods"
  return hs
end
if status.updateRevision ~= status.currentRevision then
  hs.status = "Progressing"
  hs.message = "waiting for statefulset rolling update to complete " .. updated .. " pods at revision " .. tostring(status.updateRevision) .. "..."
  return hs
end
hs.status = "Healthy"
hs.message = "statefulset rolling update complete " .. (status.currentReplicas or 0) .. " pods at revision " .. tostring(status.currentRevision) .. "..."
return hs
