-- inplace-gate: Argo CD health for apps/Deployment. A Deployment that inplace-gate
-- holds paused for an in-place rollout is Progressing (Degraded once the rollout
-- stalled), not Suspended; every other Deployment reads as Argo CD's built-in
-- check reads it (gitops-engine pkg/health, getAppsv1DeploymentHealth).
local hs = {}
local spec = obj.spec or {}
local status = obj.status or {}
local name = (obj.metadata and obj.metadata.name) or ""

local function condition(kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then return c end
  end
  return nil
end

local observed = (obj.metadata.generation or 0) <= (status.observedGeneration or 0)
local progressing = condition("Progressing")
local deadline = observed and progressing ~= nil and progressing.reason == "ProgressDeadlineExceeded"

local trouble, rollout = inplaceTrouble(obj)
if trouble ~= nil then return trouble end

if rollout ~= nil then
  -- The pause is inplace-gate's, not the user's: the pods are being moved in place.
  if deadline then
    hs.status = "Degraded"
    hs.message = "Deployment \"" .. name .. "\" exceeded its progress deadline during an in-place rollout"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "In-place rollout to " .. describeImages(rollout.images) .. " under way since " .. rollout.startedAt
  local held = partitionAnnotation(obj)
  if held > 0 then
    hs.message = hs.message .. "; inplace-gate.dev/partition=" .. held .. " keeps that many pods on the old images"
  end
  return hs
end

-- No in-place rollout: Argo CD's own rules.
if spec.paused then
  hs.status = "Suspended"
  hs.message = "Deployment is paused"
  return hs
end
if not observed then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
  return hs
end
local updated = status.updatedReplicas or 0
if deadline then
  hs.status = "Degraded"
  hs.message = "Deployment \"" .. name .. "\" exceeded its progress deadline"
elseif spec.replicas ~= nil and updated < spec.replicas then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. spec.replicas .. " new replicas have been updated..."
elseif (status.replicas or 0) > updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. ((status.replicas or 0) - updated) .. " old replicas are pending termination..."
elseif (status.availableReplicas or 0) < updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. (status.availableReplicas or 0) .. " of " .. updated .. " updated replicas are available..."
else
  hs.status = "Healthy"
  hs.message = ""
end
return hs
