-- Argo CD health check for vectorpipe.io/v1alpha1 VectorPipeline.
--
-- Single source of truth. hack/lua/sync_cm.py copies this file verbatim into
-- charts/argocd/argocd-cm-patch.yaml under the key
-- resource.customizations.health.vectorpipe.io_VectorPipeline;
-- `sync_cm.py --check` (run by tests/argocd) fails when the two drift.
--
-- Runtime: Argo CD's embedded gopher-lua (Lua 5.1). A script from argocd-cm
-- runs with the standard libraries off: only the base library (type, tostring,
-- tonumber, ipairs, pairs, ...), `table`, and require("os") for os.time/os.date
-- exist. There is no `string` library, so strings have no methods (no
-- s:find, s:sub, string.format). This script uses base functions, `table`
-- and `..` only, so it needs no resource.customizations.useOpenLibs setting.
-- The resource is the global `obj`; the script returns {status=, message=}.
-- Valid statuses: Healthy, Progressing, Degraded, Suspended, Missing, Unknown
-- (anything else becomes Unknown "Lua returned an invalid health status").
--
-- Mapping, first match wins:
--   1. no status, or no status.phase
--        -> Progressing "Waiting for the operator to reconcile generation G"
--   2. status.observedGeneration < metadata.generation (the spec changed and
--      the operator has not caught up; a missing observedGeneration is not
--      treated as stale)
--        -> Progressing "Waiting for the operator to observe generation G (observed O)"
--   3. phase Pending | Embedding | Clustering
--        -> Progressing "<Phase>: <detail>". detail is, first found:
--           a. the Ready condition's message when Ready is not True and its
--              reason is not the phase name: the operator then reports
--              something it is waiting on (a transient fault such as S3
--              throttling or slurmrestd being down, retried with backoff);
--           b. the message of the current stage's condition when not True:
--              EmbeddingComplete for Pending/Embedding ("RayJob r42-etl
--              Running, job RUNNING"), ClusteringComplete for Clustering
--              ("SlurmJob r42-kmeans Running, Slurm job 1234 RUNNING");
--           c. the message (else reason) of the most recent condition that
--              is not True ("most recent" = greatest lastTransitionTime,
--              later entries win ties);
--           d. the RayJob / SlurmJob summary in status.ray / status.slurm;
--           e. a fixed text per phase.
--           A True condition (EmbeddingComplete while Clustering) describes
--           finished work and is never used here.
--   4. phase Succeeded
--        -> Healthy, message of the Ready condition, else
--           "Succeeded: N shards, R rows" from status.outputs, else "Succeeded"
--   5. phase Failed
--        -> Degraded "Failed: <reason>: <message>" from the Ready=False
--           condition, else the most recent False condition, else
--           status.reason / status.message, else "Failed"
--   6. any other phase
--        -> Unknown "Unknown phase \"X\"" (a newer operator than this script)
-- Suspended is never returned: a VectorPipeline has no paused state (its
-- SlurmJob child reports Suspended when the Slurm job is held).

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

-- A scalar rendered as text; nil for tables, nil and empty strings.
local function text(v)
  local tv = type(v)
  if tv == "string" then
    if v == "" then
      return nil
    end
    return v
  end
  if tv == "number" or tv == "boolean" then
    return tostring(v)
  end
  return nil
end

local function conditions(status)
  local out = {}
  local list = field(status, "conditions")
  if type(list) ~= "table" then
    return out
  end
  for _, c in ipairs(list) do
    if type(c) == "table" then
      table.insert(out, c)
    end
  end
  return out
end

-- The most recent condition accepted by pick.
local function latest(conds, pick)
  local best, bestTime = nil, nil
  for _, c in ipairs(conds) do
    if pick(c) then
      local t = text(c.lastTransitionTime) or ""
      if best == nil or t >= bestTime then
        best, bestTime = c, t
      end
    end
  end
  return best
end

local function conditionOfType(conds, ctype)
  local found = nil
  for _, c in ipairs(conds) do
    if c.type == ctype then
      found = c
    end
  end
  return found
end

local function notTrue(c)
  return c.status ~= "True"
end

local function isFalse(c)
  return c.status == "False"
end

-- "reason: message", or whichever of the two is set.
local function reasonMessage(reason, message)
  reason, message = text(reason), text(message)
  if reason ~= nil and message ~= nil then
    return reason .. ": " .. message
  end
  return reason or message
end

-- Which condition tracks the stage a phase is in.
local STAGE_CONDITION = {
  Pending = "EmbeddingComplete",
  Embedding = "EmbeddingComplete",
  Clustering = "ClusteringComplete",
}

local function progressDetail(phase, status, conds)
  local ready = conditionOfType(conds, "Ready")
  if ready ~= nil and ready.status ~= "True" and text(ready.reason) ~= nil
      and ready.reason ~= phase and text(ready.message) ~= nil then
    return text(ready.message)
  end
  local stage = conditionOfType(conds, STAGE_CONDITION[phase])
  if stage ~= nil and stage.status ~= "True" and text(stage.message) ~= nil then
    return text(stage.message)
  end
  local c = latest(conds, notTrue)
  if c ~= nil then
    local d = text(c.message) or text(c.reason)
    if d ~= nil then
      return d
    end
  end
  local ray, slurm = field(status, "ray"), field(status, "slurm")
  if phase == "Embedding" and text(field(ray, "rayJob")) ~= nil then
    return "RayJob " .. text(field(ray, "rayJob")) .. " " .. (text(field(ray, "jobStatus")) or "submitted")
  end
  if phase == "Clustering" and text(field(slurm, "slurmJob")) ~= nil then
    local d = "SlurmJob " .. text(field(slurm, "slurmJob"))
    if text(field(slurm, "jobId")) ~= nil then
      d = d .. " (Slurm job " .. text(field(slurm, "jobId")) .. ")"
    end
    return d .. " " .. (text(field(slurm, "state")) or "submitted")
  end
  if phase == "Pending" then
    return "waiting for the operator to start the pipeline"
  end
  if phase == "Embedding" then
    return "embedding reads on Ray"
  end
  return "clustering vectors on Slurm"
end

local function health()
  local status = field(obj, "status")
  local generation = tonumber(field(field(obj, "metadata"), "generation"))
  local phase = text(field(status, "phase"))

  if phase == nil then
    local msg = "Waiting for the operator to reconcile the pipeline"
    if generation ~= nil then
      msg = "Waiting for the operator to reconcile generation " .. tostring(generation)
    end
    return { status = "Progressing", message = msg }
  end

  local observed = tonumber(field(status, "observedGeneration"))
  if generation ~= nil and observed ~= nil and observed < generation then
    return {
      status = "Progressing",
      message = "Waiting for the operator to observe generation " .. tostring(generation)
        .. " (observed " .. tostring(observed) .. ")",
    }
  end

  local conds = conditions(status)

  if phase == "Pending" or phase == "Embedding" or phase == "Clustering" then
    return { status = "Progressing", message = phase .. ": " .. progressDetail(phase, status, conds) }
  end

  if phase == "Succeeded" then
    local ready = conditionOfType(conds, "Ready")
    local msg = ready ~= nil and text(ready.message) or nil
    if msg == nil then
      local outputs = field(status, "outputs")
      local shards, rows = text(field(outputs, "shards")), text(field(outputs, "rows"))
      if shards ~= nil and rows ~= nil then
        msg = "Succeeded: " .. shards .. " shards, " .. rows .. " rows"
      else
        msg = "Succeeded"
      end
    end
    return { status = "Healthy", message = msg }
  end

  if phase == "Failed" then
    local detail = nil
    local ready = conditionOfType(conds, "Ready")
    if ready ~= nil and ready.status == "False" then
      detail = reasonMessage(ready.reason, ready.message)
    end
    if detail == nil then
      local c = latest(conds, isFalse)
      if c ~= nil then
        detail = reasonMessage(c.reason, c.message)
      end
    end
    if detail == nil then
      detail = reasonMessage(field(status, "reason"), field(status, "message"))
    end
    if detail == nil then
      return { status = "Degraded", message = "Failed" }
    end
    return { status = "Degraded", message = "Failed: " .. detail }
  end

  return { status = "Unknown", message = "Unknown phase \"" .. phase .. "\"" }
end

return health()
