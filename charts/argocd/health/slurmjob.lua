-- Argo CD health check for vectorpipe.io/v1alpha1 SlurmJob.
--
-- Single source of truth. hack/lua/sync_cm.py copies this file verbatim into
-- charts/argocd/argocd-cm-patch.yaml under the key
-- resource.customizations.health.vectorpipe.io_SlurmJob;
-- `sync_cm.py --check` (run by tests/argocd) fails when the two drift.
--
-- Runtime: Argo CD's embedded gopher-lua (Lua 5.1) with the standard libraries
-- off (see vectorpipeline.lua): base functions, `table` and `..` only; no
-- `string` library, no string methods. The resource is the global `obj`; the
-- script returns {status=, message=} with status one of Healthy, Progressing,
-- Degraded, Suspended, Missing, Unknown.
--
-- Inputs: status.phase (Pending|Submitted|Running|Succeeded|Failed|Cancelled,
-- written by the slurm-bridge), status.jobId, status.state (the Slurm job
-- state, e.g. PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, NODE_FAIL,
-- CANCELLED; a list of state flags such as {"PENDING", "REQUEUED"} is also
-- understood), status.reason (Slurm's reason, e.g. Resources, Priority,
-- JobHeldUser), status.exitCode, status.message, status.conditions,
-- status.observedGeneration, spec.suspend.
--
-- Mapping, first match wins:
--   1. phase Succeeded | Failed | Cancelled and not stale (below)
--        Succeeded -> Healthy  "Slurm job ID COMPLETED, exit code N"
--        Failed    -> Degraded "Slurm job ID TIMEOUT (hit its time limit), exit code N: <detail>"
--        Cancelled -> Degraded "Slurm job ID CANCELLED: <detail>"
--      Cancelled is Degraded, not Suspended: Argo CD's Suspended means "waiting
--      for an external event to resume", and a cancelled Slurm job never
--      resumes; it must be re-created. (Suspended also ranks healthier than
--      Progressing in an Application's aggregate health, which would hide it.)
--   2. spec.suspend == true (the user asked for a pause, whatever Slurm says;
--      the SlurmJob CRD has no spec.suspend yet, so this waits for it)
--        -> Suspended "Suspended by spec.suspend" [+ " (Slurm job ID STATE)"]
--   3. no status, or no status.phase
--        -> Progressing "Waiting for the slurm-bridge to submit the job"
--   4. status.observedGeneration < metadata.generation (missing = not stale)
--        -> Progressing "Waiting for the slurm-bridge to observe generation G (observed O)"
--   5. the Slurm job is held or stopped: state PENDING with reason JobHeldUser
--      or JobHeldAdmin, or state REQUEUE_HOLD, RESV_DEL_HOLD, SUSPENDED, STOPPED
--        -> Suspended "Slurm job ID is held (JobHeldUser); release it with: scontrol release ID"
--           or "Slurm job ID is SUSPENDED"
--   6. phase Pending | Submitted | Running
--        -> Progressing "Slurm job ID PENDING: Resources" / "Slurm job ID RUNNING"
--           (before a job id exists: "Pending: waiting for the slurm-bridge to submit the job")
--   7. any other phase -> Unknown "Unknown phase \"X\""
-- <detail> is status.message, else the message (or reason) of the most recent
-- condition with status False, else status.reason.

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

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

-- Why a Slurm job ended in a failed state, for the Degraded message.
local FAILURE_EXPLAINED = {
  BOOT_FAIL = "a node failed to boot",
  DEADLINE = "missed its deadline",
  NODE_FAIL = "a node failed",
  OUT_OF_MEMORY = "ran out of memory",
  PREEMPTED = "preempted",
  TIMEOUT = "hit its time limit",
}

local HELD_REASONS = { JobHeldUser = true, JobHeldAdmin = true }
local HOLD_STATES = { REQUEUE_HOLD = true, RESV_DEL_HOLD = true }
local STOPPED_STATES = { SUSPENDED = true, STOPPED = true }

-- status.state as a list of flags and as display text.
local function states(status)
  local s = field(status, "state")
  local list = {}
  if type(s) == "table" then
    for _, v in ipairs(s) do
      if type(v) == "string" and v ~= "" then
        table.insert(list, v)
      end
    end
  elseif type(s) == "string" and s ~= "" then
    table.insert(list, s)
  end
  if #list == 0 then
    return list, nil
  end
  return list, table.concat(list, ",")
end

local function hasAny(list, set)
  for _, v in ipairs(list) do
    if set[v] then
      return v
    end
  end
  return nil
end

local function failureDetail(status)
  local msg = text(field(status, "message"))
  if msg ~= nil then
    return msg
  end
  local best, bestTime = nil, nil
  local conds = field(status, "conditions")
  if type(conds) == "table" then
    for _, c in ipairs(conds) do
      if type(c) == "table" and c.status == "False" then
        local t = text(c.lastTransitionTime) or ""
        if best == nil or t >= bestTime then
          best, bestTime = c, t
        end
      end
    end
  end
  if best ~= nil then
    local d = text(best.message) or text(best.reason)
    if d ~= nil then
      return d
    end
  end
  return text(field(status, "reason"))
end

local function health()
  local status = field(obj, "status")
  local generation = tonumber(field(field(obj, "metadata"), "generation"))
  local observed = tonumber(field(status, "observedGeneration"))
  local stale = generation ~= nil and observed ~= nil and observed < generation
  local phase = text(field(status, "phase"))
  local jobId = text(field(status, "jobId"))
  local flags, state = states(status)
  local exitCode = text(field(status, "exitCode"))

  local job = "Slurm job"
  if jobId ~= nil then
    job = "Slurm job " .. jobId
  end

  if not stale and phase == "Succeeded" then
    local msg = job .. " " .. (state or "COMPLETED")
    if exitCode ~= nil then
      msg = msg .. ", exit code " .. exitCode
    end
    return { status = "Healthy", message = msg }
  end

  if not stale and phase == "Failed" then
    local msg = job .. " " .. (state or "FAILED")
    local why = state ~= nil and FAILURE_EXPLAINED[flags[1]] or nil
    if why ~= nil then
      msg = msg .. " (" .. why .. ")"
    end
    if exitCode ~= nil then
      msg = msg .. ", exit code " .. exitCode
    end
    local detail = failureDetail(status)
    if detail ~= nil then
      msg = msg .. ": " .. detail
    end
    return { status = "Degraded", message = msg }
  end

  if not stale and phase == "Cancelled" then
    local msg = job .. " " .. (state or "CANCELLED")
    local detail = failureDetail(status)
    if detail ~= nil then
      msg = msg .. ": " .. detail
    end
    return { status = "Degraded", message = msg }
  end

  if field(field(obj, "spec"), "suspend") == true then
    local msg = "Suspended by spec.suspend"
    if jobId ~= nil then
      msg = msg .. " (" .. job .. " " .. (state or phase or "submitted") .. ")"
    end
    return { status = "Suspended", message = msg }
  end

  if phase == nil then
    return { status = "Progressing", message = "Waiting for the slurm-bridge to submit the job" }
  end

  if stale then
    return {
      status = "Progressing",
      message = "Waiting for the slurm-bridge to observe generation " .. tostring(generation)
        .. " (observed " .. tostring(observed) .. ")",
    }
  end

  local reason = text(field(status, "reason"))
  if flags[1] == "PENDING" and reason ~= nil and HELD_REASONS[reason] then
    local msg = job .. " is held (" .. reason .. ")"
    if jobId ~= nil then
      msg = msg .. "; release it with: scontrol release " .. jobId
    end
    return { status = "Suspended", message = msg }
  end
  local hold = hasAny(flags, HOLD_STATES) or hasAny(flags, STOPPED_STATES)
  if hold ~= nil then
    return { status = "Suspended", message = job .. " is " .. hold }
  end

  if phase == "Pending" or phase == "Submitted" or phase == "Running" then
    if jobId == nil and state == nil then
      local msg = phase .. ": waiting for the slurm-bridge to submit the job"
      if phase ~= "Pending" then
        msg = phase .. ": waiting for Slurm to report the job"
      end
      local detail = reason or failureDetail(status)
      if detail ~= nil then
        msg = msg .. " (" .. detail .. ")"
      end
      return { status = "Progressing", message = msg }
    end
    local msg = job .. " " .. (state or phase)
    if reason ~= nil and reason ~= "None" then
      msg = msg .. ": " .. reason
    end
    return { status = "Progressing", message = msg }
  end

  return { status = "Unknown", message = "Unknown phase \"" .. phase .. "\"" }
end

return health()
