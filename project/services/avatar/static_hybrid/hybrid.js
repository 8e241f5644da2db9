// The browser side of /hybrid (both pages): avatar video through livekit-client,
// microphone → PCM16 16 kHz → WebSocket, transcript and connection states.
//
// Protocol (server → page): avatar_ready {session_id, url, access_token},
// elevenlabs_connected, user_transcript {text}, agent_response {text}, error {message}.
// Page → server: {"type": "client_ready"} once the video is joined, then binary audio.

const LIVEKIT_CLIENT = "/vendor/livekit-client.esm.mjs";
const WORKLET = "/static/pcm-recorder.worklet.js";

export function mountAvatarPage(root) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const ui = {
    status: part("status"),
    video: part("video"),
    videoStatus: part("video-status"),
    micStatus: part("mic-status"),
    transcript: part("transcript"),
    caption: part("caption"),
    start: part("start"),
    stop: part("stop"),
  };
  const token = new URLSearchParams(location.search).get("token") || "";
  let ws = null;
  let room = null;
  let mic = null;
  let failed = false;

  const setState = (node, text, state) => {
    if (!node) return;
    node.textContent = text;
    node.dataset.state = state;
  };
  const addLine = (who, text) => {
    if (ui.caption && who !== "error") setState(ui.caption, text, who);
    if (!ui.transcript) return;
    const line = document.createElement("li");
    line.dataset.who = who;
    line.textContent = text;
    ui.transcript.append(line);
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  };
  const send = (message) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  };

  if (!token) {
    setState(ui.status, "Add ?token=… (the avatar access token) to this page's address, then reload.", "error");
    ui.start.disabled = true;
    return;
  }

  ui.start.addEventListener("click", start);
  ui.stop.addEventListener("click", () => {
    setState(ui.status, "Stopped.", "closed");
    if (ws) ws.close(1000, "stopped by the user");
  });
  setState(ui.status, "Ready: press Start.", "idle");

  function start() {
    failed = false;
    ui.start.disabled = true;
    ui.stop.disabled = false;
    setState(ui.status, "Connecting to the avatar server…", "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/hybrid?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      setState(ui.status, "Creating the avatar session (HeyGen)…", "connecting");
    });
    ws.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    ws.addEventListener("close", (event) => {
      if (!opened) {
        setState(ui.status, "The server refused the connection: is the access token in the address right?", "error");
      } else if (!failed && ui.status.dataset.state !== "closed") {
        setState(ui.status, `Disconnected (code ${event.code}).`, "closed");
      }
      teardown();
    });
  }

  async function handle(message) {
    switch (message.type) {
      case "avatar_ready":
        setState(ui.status, "Avatar session ready: joining its video…", "connecting");
        await joinVideo(message.url, message.access_token);
        send({ type: "client_ready" });
        setState(ui.status, "Connecting the conversation (ElevenLabs)…", "connecting");
        break;
      case "elevenlabs_connected":
        setState(ui.status, "Live: talk to the avatar.", "live");
        await startMicrophone();
        break;
      case "user_transcript":
        addLine("user", message.text);
        break;
      case "agent_response":
        addLine("agent", message.text);
        break;
      case "error":
        failed = true;
        setState(ui.status, `Error: ${message.message}`, "error");
        addLine("error", message.message);
        break;
    }
  }

  async function joinVideo(url, accessToken) {
    setState(ui.videoStatus, "Joining the avatar's video…", "connecting");
    try {
      const { Room, RoomEvent } = await import(LIVEKIT_CLIENT);
      room = new Room({ adaptiveStream: true, dynacast: true });
      room.on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind !== "video" && track.kind !== "audio") return;
        ui.video.append(track.attach());
        if (track.kind === "video") setState(ui.videoStatus, "Video live.", "live");
      });
      room.on(RoomEvent.Disconnected, () => setState(ui.videoStatus, "Video disconnected.", "closed"));
      await room.connect(url, accessToken);
      setState(ui.videoStatus, "Video connected: waiting for the avatar…", "connecting");
    } catch (error) {
      // The conversation still works without the picture: say so and go on.
      setState(ui.videoStatus, `Video unavailable: ${(error && error.message) || error}`, "error");
    }
  }

  async function startMicrophone() {
    setState(ui.micStatus, "Asking for the microphone…", "connecting");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      // A 16 kHz context makes the browser resample the microphone; the worklet
      // resamples itself if the browser gave another rate.
      const context = new AudioContext({ sampleRate: 16000 });
      await context.audioWorklet.addModule(WORKLET);
      const source = context.createMediaStreamSource(stream);
      const recorder = new AudioWorkletNode(context, "pcm16-recorder", {
        processorOptions: { targetRate: 16000, chunkMs: 100 },
      });
      let sent = 0;
      recorder.port.onmessage = (event) => {
        if (ws && ws.readyState === WebSocket.OPEN) {
          ws.send(event.data);
          sent += event.data.byteLength;
          ui.micStatus.dataset.bytes = String(sent);
        }
      };
      const mute = context.createGain();
      mute.gain.value = 0; // pulled by the destination so the worklet runs, but never heard
      source.connect(recorder).connect(mute).connect(context.destination);
      mic = { stream, context };
      setState(ui.micStatus, "Microphone on (PCM16, 16 kHz).", "live");
    } catch (error) {
      setState(ui.micStatus, `Microphone unavailable: ${(error && error.message) || error}`, "error");
    }
  }

  function teardown() {
    if (mic) {
      mic.stream.getTracks().forEach((track) => track.stop());
      mic.context.close();
      mic = null;
      setState(ui.micStatus, "Microphone off.", "closed");
    }
    if (room) {
      room.disconnect();
      room = null;
    }
    ws = null;
    ui.start.disabled = false;
    ui.stop.disabled = true;
  }
}

// Both pages load this module alone: it mounts itself on the page it is loaded into.
mountAvatarPage(document.body);
