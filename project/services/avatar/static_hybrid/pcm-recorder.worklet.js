// AudioWorklet: microphone (Float32 at the context's rate) → PCM16 mono at 16 kHz,
// posted to the page in chunks of `chunkMs` as transferable ArrayBuffers.
class Pcm16Recorder extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    const target = opts.targetRate || 16000;
    // sampleRate is the AudioContext's rate (a worklet global). When the page got a
    // 16 kHz context this is 1 and every sample is kept.
    this.step = sampleRate / target;
    this.size = Math.round((target * (opts.chunkMs || 100)) / 1000);
    this.chunk = new Int16Array(this.size);
    this.count = 0;
    this.position = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (; this.position < channel.length; this.position += this.step) {
      // Average the samples a step covers: a cheap low-pass before decimation.
      const from = Math.floor(this.position);
      const to = Math.max(from + 1, Math.min(channel.length, Math.floor(this.position + this.step)));
      let sum = 0;
      for (let i = from; i < to; i++) sum += channel[i];
      const value = Math.max(-1, Math.min(1, sum / (to - from)));
      this.chunk[this.count++] = value < 0 ? value * 0x8000 : value * 0x7fff;
      if (this.count === this.size) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
        this.chunk = new Int16Array(this.size);
        this.count = 0;
      }
    }
    this.position -= channel.length;
    return true;
  }
}

registerProcessor("pcm16-recorder", Pcm16Recorder);
