// The browser softphone: the microphone to the agent over a WebSocket (/api/softphone), the agent's voice back,
// the live transcript with each reply's latency, a keypad and a hang-up button. See voiceagent/web/softphone.py.
import { api, element, milliseconds, withToken } from "/static/common.js";

const status = document.getElementById("status");
const callButton = document.getElementById("call");
const hangupButton = document.getElementById("hangup");
const keypad = document.getElementById("keypad");
const transcript = document.getElementById("transcript");

let call = null;  // {socket, context, stream, playback, startedAt, timer}
let agentTurn = null;  // the <li> of the agent turn being spoken
let partial = null;  // the <li> of the caller's words so far

function setStatus(text) {
  status.textContent = text;
}

function turn(role, text) {
  const item = element("li", `turn ${role}`);
  item.append(element("span", "role", role === "caller" ? "You" : "Agent"), element("span", "text", text));
  transcript.append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

const handlers = {
  partial({ text }) {
    if (!partial) partial = turn("caller", "");
    partial.classList.add("partial");
    partial.querySelector(".text").textContent = text;
  },
  caller(data) {
    const text = data.text ?? `[keys ${data.dtmf}]`;
    if (partial) {
      partial.classList.remove("partial");
      partial.querySelector(".text").textContent = text;
    } else {
      turn("caller", text);
    }
    partial = null;
    agentTurn = null;
  },
  agent({ text }) {
    if (!agentTurn) {
      agentTurn = turn("agent", text);
    } else {
      agentTurn.querySelector(".text").textContent += ` ${text}`;
    }
  },
  latency(data) {
    if (!agentTurn) return;
    const badge = element("span", "latency", milliseconds(data.voice_to_voice_ms));
    badge.title = Object.entries(data).map(([mark, ms]) => `${mark.replace(/_ms$/, "")}: ${ms} ms`).join("\n");
    agentTurn.append(badge);
  },
  interrupted({ heard }) {
    call?.playback.port.postMessage("clear");
    if (agentTurn) {
      agentTurn.classList.add("interrupted");
      agentTurn.querySelector(".text").textContent = heard || "…";
      agentTurn = null;
    }
  },
  resumed() {},
  ended({ reason }) {
    finish(`Call ended: ${reason}`);
  },
};

async function start() {
  callButton.disabled = true;
  transcript.replaceChildren();
  agentTurn = partial = null;
  setStatus("Connecting…");
  const opened = {};  // what dial() has opened so far: closed again if it fails
  try {
    await dial(opened);
  } catch (error) {
    opened.stream?.getTracks().forEach((track) => track.stop());
    opened.context?.close();
    setStatus(error.message);
    callButton.disabled = false;
  }
}

/** Open the microphone, the audio graph and the line to the agent; throws with a message for the caller. */
async function dial(opened) {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    throw new Error("The microphone needs this page over HTTPS (or from 127.0.0.1 / localhost)");
  }
  // An API call first: it asks for the token when the server needs one (a WebSocket cannot say 401).
  const check = await api("/api/calls").catch(() => null);
  if (!check?.ok) throw new Error(`The agent cannot be reached (${check ? check.status : "no answer"})`);
  try {
    opened.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    throw new Error(`No microphone: ${error.message}`);
  }
  const stream = opened.stream;
  const context = (opened.context = new AudioContext());  // the device's own rate: Firefox cannot mix rates
  await context.audioWorklet.addModule("/static/audio-worklet.js");
  await context.resume();
  const microphone = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture", { numberOfOutputs: 0 });
  const playback = new AudioWorkletNode(context, "playback", { numberOfInputs: 0, outputChannelCount: [1] });
  microphone.connect(capture);
  playback.connect(context.destination);

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(withToken(`${scheme}//${location.host}/api/softphone`));
  socket.binaryType = "arraybuffer";
  call = { socket, context, stream, playback, startedAt: 0, timer: 0 };
  socket.onopen = () => socket.send(JSON.stringify({ type: "start", sample_rate: context.sampleRate }));
  socket.onmessage = (message) => {
    if (message.data instanceof ArrayBuffer) {
      const pcm = new Int16Array(message.data);
      const samples = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
      playback.port.postMessage(samples, [samples.buffer]);
      return;
    }
    const event = JSON.parse(message.data);
    if (event.type === "started") {
      call.startedAt = Date.now();
      call.timer = setInterval(showDuration, 1000);
      showDuration();
      hangupButton.disabled = false;
      capture.port.onmessage = ({ data }) => {
        if (socket.readyState !== WebSocket.OPEN) return;
        const pcm = new Int16Array(data.length);
        for (let i = 0; i < data.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(data[i] * 32767)));
        socket.send(pcm.buffer);
      };
    } else if (event.type === "refused") {
      finish(`Not answered: ${event.reason}`);
    } else if (event.type === "event") {
      handlers[event.kind]?.(event.data);
    }
  };
  socket.onclose = () => finish(status.textContent.startsWith("Call ended") ? status.textContent : "Call ended");
  socket.onerror = () => setStatus("The connection to the agent failed");
}

function showDuration() {
  const seconds = Math.floor((Date.now() - call.startedAt) / 1000);
  setStatus(`In call ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`);
}

function hangUp() {
  if (call?.socket.readyState === WebSocket.OPEN) call.socket.send(JSON.stringify({ type: "hangup" }));
  finish("Call ended: you hung up");
}

function finish(text) {
  setStatus(text);
  if (!call) return;
  const { socket, context, stream, timer } = call;
  call = null;
  clearInterval(timer);
  socket.onclose = null;
  if (socket.readyState <= WebSocket.OPEN) socket.close();
  stream.getTracks().forEach((track) => track.stop());
  context.close();
  hangupButton.disabled = true;
  callButton.disabled = false;
}

callButton.addEventListener("click", start);
hangupButton.addEventListener("click", hangUp);
keypad.addEventListener("click", (event) => {
  const digit = event.target.closest("button")?.textContent;
  if (digit && call?.socket.readyState === WebSocket.OPEN) {
    call.socket.send(JSON.stringify({ type: "dtmf", digit }));
  }
});
