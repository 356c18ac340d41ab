// The call console: active and finished calls from the call records (/api/calls), each with its transcript,
// actions, latencies, sentiment and the audio of both sides (caller left, agent right in the recording).
import { api, element, milliseconds, withToken } from "/static/common.js";

const rows = document.querySelector("#calls tbody");
const detail = document.getElementById("detail");
const audio = document.getElementById("audio");
const side = document.getElementById("side");
let selected = null;
let selectedWasActive = false;
let sides = null;  // the Web Audio graph that picks a side of the recording, made on first use

function mood(sentiment) {
  if (sentiment === null || sentiment === undefined) return "";
  return sentiment > 0.3 ? "happy" : sentiment < -0.3 ? "upset" : "neutral";
}

function outcome(call) {
  if (call.active) return "in progress";
  const actions = call.actions || [];
  return [call.end_reason, ...actions.filter((a) => a !== "end_call")].filter(Boolean).join(", ");
}

async function refresh() {
  const response = await api("/api/calls");
  if (!response.ok) return;
  const calls = await response.json();
  document.getElementById("count").textContent = `(${calls.length})`;
  document.getElementById("empty").hidden = calls.length > 0;
  rows.replaceChildren(
    ...calls.map((call) => {
      const row = element("tr", call.active ? "active" : "");
      row.dataset.callId = call.call_id;
      row.classList.toggle("selected", call.call_id === selected);
      row.append(
        element("td", "", new Date(call.started_at).toLocaleString()),
        element("td", "", call.transport),
        element("td", "", String(call.caller_turns)),
        element("td", "", milliseconds(call.voice_to_voice_ms)),
        element("td", "", mood(call.sentiment)),
        element("td", "", outcome(call)),
      );
      row.addEventListener("click", () => show(call.call_id));
      return row;
    }),
  );
  // A call in progress is shown afresh at each refresh, and once more when it ends (its recording appears).
  const current = calls.find((c) => c.call_id === selected);
  if (current?.active) show(selected, false);
  else if (current && selectedWasActive) show(selected);
}

async function show(callId, reloadAudio = true) {
  selected = callId;
  for (const row of rows.children) row.classList.toggle("selected", row.dataset.callId === callId);
  const response = await api(`/api/calls/${encodeURIComponent(callId)}`);
  if (!response.ok) return;
  const record = await response.json();
  selectedWasActive = record.active;
  detail.hidden = false;
  document.getElementById("detail-title").textContent = `Call ${record.call_id}`;
  const facts = {
    Line: record.transport,
    Started: new Date(record.started_at).toLocaleString(),
    Ended: record.active ? "in progress" : record.end_reason,
    "Transferred to": record.transfer_to,
  };
  document.getElementById("facts").replaceChildren(
    ...Object.entries(facts)
      .filter(([, value]) => value)
      .flatMap(([name, value]) => [element("dt", "", name), element("dd", "", value)]),
  );
  document.getElementById("actions").replaceChildren(
    ...(record.actions.length ? record.actions : [{ type: "none" }]).map((action) => {
      const { type, ...rest } = action;
      const details = Object.entries(rest).map(([k, v]) => `${k}: ${v}`).join(", ");
      return element("li", "action", details ? `${type} (${details})` : type);
    }),
  );
  document.getElementById("turns").replaceChildren(...record.turns.map(turnItem));
  const recording = document.getElementById("recording");
  recording.hidden = !record.has_audio;
  if (!recording.hidden && reloadAudio) audio.src = withToken(`/api/calls/${encodeURIComponent(callId)}/audio`);
}

function turnItem(turn) {
  const item = element("li", `turn ${turn.role}${turn.interrupted ? " interrupted" : ""}`);
  const text = turn.text || (turn.dtmf ? `[keys ${turn.dtmf}]` : "");
  item.append(element("span", "role", turn.role === "caller" ? "Caller" : "Agent"), element("span", "text", text));
  const notes = [];
  if (turn.role === "caller" && turn.sentiment !== null && !turn.dtmf) notes.push(`${mood(turn.sentiment)} (${turn.sentiment.toFixed(2)})`);
  if (turn.intent) notes.push(turn.intent);
  if (turn.interrupted) notes.push(`interrupted; unheard: ${turn.unheard || "nothing"}`);
  if (turn.latency?.voice_to_voice_ms !== undefined) {
    const badge = element("span", "latency", milliseconds(turn.latency.voice_to_voice_ms));
    badge.title = Object.entries(turn.latency).map(([mark, ms]) => `${mark.replace(/_ms$/, "")}: ${ms} ms`).join("\n");
    item.append(badge);
  }
  if (notes.length) item.append(element("span", "notes", notes.join(" · ")));
  return item;
}

// One side of the stereo recording: the chosen channel to both ears.
side.addEventListener("change", () => {
  if (!sides) {
    const context = new AudioContext();
    const source = context.createMediaElementSource(audio);
    const splitter = context.createChannelSplitter(2);
    const merger = context.createChannelMerger(2);
    source.connect(splitter);
    merger.connect(context.destination);
    sides = { context, splitter, merger };
  }
  const { context, splitter, merger } = sides;
  context.resume();
  splitter.disconnect();
  const channels = { both: [[0, 0], [1, 1]], caller: [[0, 0], [0, 1]], agent: [[1, 0], [1, 1]] }[side.value];
  for (const [from, to] of channels) splitter.connect(merger, from, to);
});

const wanted = new URLSearchParams(location.search).get("call");
refresh().then(() => wanted && show(wanted));
setInterval(refresh, 3000);
