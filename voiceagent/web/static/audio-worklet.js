// The softphone's audio, on the browser's audio thread: the microphone in 20 ms frames, the agent's voice out.

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Float32Array(Math.round(sampleRate * 0.02));
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0][0];  // the first channel: a call is mono
    if (input) {
      let read = 0;
      while (read < input.length) {
        const take = Math.min(input.length - read, this.frame.length - this.filled);
        this.frame.set(input.subarray(read, read + take), this.filled);
        this.filled += take;
        read += take;
        if (this.filled === this.frame.length) {
          this.port.postMessage(this.frame);
          this.frame = new Float32Array(this.frame.length);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

// The agent's voice arrives paced in real time; a short queue absorbs the network's jitter. "clear" drops what is
// queued (the caller interrupted the agent). If the queue grows past half a second (this clock runs slower than
// the server's), the oldest audio goes, so the call never falls behind.
class Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.offset = 0;
    this.queued = 0;
    this.port.onmessage = (event) => {
      if (event.data === "clear") {
        this.queue = [];
        this.offset = 0;
        this.queued = 0;
        return;
      }
      this.queue.push(event.data);
      this.queued += event.data.length;
      while (this.queued - this.offset > sampleRate / 2 && this.queue.length > 1) {
        this.queued -= this.queue.shift().length;
        this.offset = 0;
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let written = 0;
    while (written < out.length && this.queue.length) {
      const head = this.queue[0];
      const take = Math.min(out.length - written, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + take), written);
      written += take;
      this.offset += take;
      if (this.offset === head.length) {
        this.queued -= head.length;
        this.queue.shift();
        this.offset = 0;
      }
    }
    out.fill(0, written);
    for (let channel = 1; channel < outputs[0].length; channel++) outputs[0][channel].set(out);
    return true;
  }
}

registerProcessor("capture", Capture);
registerProcessor("playback", Playback);
