// The webcam: picking a device, starting and stopping it, and capturing one frame at the model's
// size (centre-cropped, so the picture keeps its proportions instead of being squashed).

export class CameraError extends Error {}

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
    this.deviceId = null;
    this.canvas = document.createElement("canvas");
    this.mirror = false;
    /** Called when the camera stops on its own (unplugged, or taken by the system). */
    this.onended = null;
  }

  get running() {
    return this.stream !== null;
  }

  /** Video inputs; labels are empty until the person has allowed a camera once. */
  static async list() {
    if (!navigator.mediaDevices?.enumerateDevices) return [];
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices
      .filter((d) => d.kind === "videoinput")
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `Camera ${i + 1}` }));
  }

  /** Start (or switch to) a camera; raises CameraError with a message for the person. */
  async start(deviceId, width, height) {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new CameraError(
        window.isSecureContext
          ? "This browser cannot use a camera."
          : "The camera needs a secure page: open this site over https:// or on localhost.",
      );
    }
    const video = {
      width: { ideal: Math.max(640, width) },
      height: { ideal: Math.max(480, height) },
      frameRate: { ideal: 30 },
    };
    if (deviceId) video.deviceId = { exact: deviceId };
    else video.facingMode = "user";
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (error) {
      throw new CameraError(cameraErrorText(error));
    }
    this.stop();
    this.stream = stream;
    for (const track of stream.getVideoTracks()) {
      track.addEventListener("ended", () => {
        if (this.stream === stream) this.onended?.();
      });
    }
    this.deviceId = stream.getVideoTracks()[0]?.getSettings().deviceId || deviceId || null;
    this.video.srcObject = stream;
    try {
      await this.video.play();
    } catch {
      // autoplay of a muted video is allowed everywhere; a refusal here is harmless
    }
    await this.waitReady();
    return this.deviceId;
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }

  waitReady() {
    if (this.video.readyState >= 2 && this.video.videoWidth > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.video.removeEventListener("loadeddata", done);
        resolve();
      };
      this.video.addEventListener("loadeddata", done);
    });
  }

  /** One JPEG of width x height from the current video frame. */
  async capture(width, height, quality = 0.8) {
    await this.waitReady();
    const { video, canvas } = this;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d", { alpha: false });
    const crop = centreCrop(video.videoWidth, video.videoHeight, width, height);
    ctx.save();
    if (this.mirror) {
      ctx.translate(width, 0);
      ctx.scale(-1, 1);
    }
    ctx.drawImage(video, crop.x, crop.y, crop.w, crop.h, 0, 0, width, height);
    ctx.restore();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (!blob) throw new Error("The browser could not encode the camera frame.");
    return blob.arrayBuffer();
  }
}

/** The largest centred region of a sw x sh source with the proportions of dw x dh. */
export function centreCrop(sw, sh, dw, dh) {
  const scale = Math.min(sw / dw, sh / dh);
  const w = dw * scale;
  const h = dh * scale;
  return { x: (sw - w) / 2, y: (sh - h) / 2, w, h };
}

export function cameraErrorText(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was denied. Allow the camera for this site (the camera icon in the address bar), then press Start again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect a camera or pick another one, then press Start again.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is busy or could not be started. Close other apps that use it, then press Start again.";
    default:
      return `The camera could not be started: ${error?.message || error}.`;
  }
}
