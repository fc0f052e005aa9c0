// The clip's 3D view: one frustum per annotated frame coloured by time, the path through the camera centres,
// a point cloud from a few depth frames, and the frame on screen highlighted.
import * as THREE from "./vendor/three/three.module.min.js";

// The dataset's cameras use OpenCV axes (x right, y down, z forward); three.js looks down -z with y up.
const flip = (x, y, z) => new THREE.Vector3(x, -y, -z);
// Frustum depth as a share of the scene's size: visible, yet small enough that neighbours do not merge.
const FRUSTUM_SHARE = 0.06;
// The highlighted frustum is drawn this much larger so it stands out from the ones it overlaps.
const HIGHLIGHT_SCALE = 1.6;
// A camera that only turns (tripod, pan) has a path of length zero: its frustums get this depth instead, in the
// poses' units (the scene's near depth), and the view frames them at a few times that.
const STILL_FRUSTUM = 0.3;
// Once the points are in, frustums are at least this share of the whole scene, so a short path stays visible.
const SCENE_SHARE = 0.03;

function timeColour(t) {
  // Blue (start) through green to yellow-red (end).
  return new THREE.Color().setHSL(0.66 * (1 - t), 0.85, 0.55);
}

// Share of points left out at each end of each axis when framing the cloud: far strays would shrink the scene.
const FRAME_TRIM = 0.05;

function robustBox(positions, count) {
  const step = Math.max(1, Math.floor(count / 5000));
  const low = [], high = [];
  for (let axis = 0; axis < 3; axis++) {
    const values = [];
    for (let i = 0; i < count; i += step) values.push(positions[3 * i + axis]);
    values.sort((a, b) => a - b);
    low.push(values[Math.floor(FRAME_TRIM * (values.length - 1))]);
    high.push(values[Math.ceil((1 - FRAME_TRIM) * (values.length - 1))]);
  }
  return new THREE.Box3(new THREE.Vector3(...low), new THREE.Vector3(...high));
}

export class ClipScene {
  constructor(container, detail) {
    this.container = container;
    this.detail = detail;
    this.poses = detail.c2w.map((m) => m.slice());
    this.frustums = this.poses.length;
    this.points = 0;
    this.highlighted = -1;
    this.frames = 0;
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setClearColor(0x11151f);
    container.append(this.renderer.domElement);
    this.renderer.domElement.id = "scene-canvas";
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(50, 1, 0.001, 1e5);
    this.legend = document.createElement("div");
    this.legend.className = "legend";
    container.append(this.legend);

    const centres = this.poses.map((m) => flip(m[3], m[7], m[11]));
    this.bounds = new THREE.Box3().setFromPoints(centres.length ? centres : [new THREE.Vector3()]);
    const extent = this.bounds.getSize(new THREE.Vector3()).length();
    this.frustumDepth = extent > 1e-6 ? extent * FRUSTUM_SHARE : STILL_FRUSTUM;
    this.size = Math.max(extent, this.frustumDepth * 4);
    this.centres = centres;
    this.buildCameras();
    this.fit();
    this.bindControls();
    this.resize = new ResizeObserver(() => this.onResize());
    this.resize.observe(container);
    this.onResize();
    this.updateLegend();
  }

  frustumCorners(m, depth) {
    // Apex and the four image corners at `depth`, in three.js world coordinates.
    const k = this.detail.intrinsics[0] || [0.8, 0.8 * 16 / 9, 0.5, 0.5];
    const [fx, fy, cx, cy] = k;
    const corners = [[0, 0], [1, 0], [1, 1], [0, 1]].map(([u, v]) => {
      const x = ((u - cx) / fx) * depth, y = ((v - cy) / fy) * depth, z = depth;
      return flip(m[0] * x + m[1] * y + m[2] * z + m[3], m[4] * x + m[5] * y + m[6] * z + m[7], m[8] * x + m[9] * y + m[10] * z + m[11]);
    });
    return [flip(m[3], m[7], m[11]), ...corners];
  }

  frustumSegments(m, depth) {
    const [apex, a, b, c, d] = this.frustumCorners(m, depth);
    return [apex, a, apex, b, apex, c, apex, d, a, b, b, c, c, d, d, a];
  }

  buildCameras() {
    for (const old of this.cameraObjects || []) { this.scene.remove(old); old.geometry.dispose(); }
    const positions = [], colours = [];
    this.poses.forEach((m, i) => {
      const colour = timeColour(this.poses.length > 1 ? i / (this.poses.length - 1) : 0);
      for (const p of this.frustumSegments(m, this.frustumDepth)) {
        positions.push(p.x, p.y, p.z);
        colours.push(colour.r, colour.g, colour.b);
      }
    });
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.Float32BufferAttribute(positions, 3));
    geometry.setAttribute("color", new THREE.Float32BufferAttribute(colours, 3));
    this.frustumLines = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ vertexColors: true, transparent: true, opacity: 0.8 }));
    const path = new THREE.Line(new THREE.BufferGeometry().setFromPoints(this.centres), new THREE.LineBasicMaterial({ color: 0x8899bb }));

    const highlight = new THREE.BufferGeometry();
    highlight.setAttribute("position", new THREE.Float32BufferAttribute(new Float32Array(16 * 3), 3));
    this.highlight = new THREE.LineSegments(highlight, new THREE.LineBasicMaterial({ color: 0xffffff }));
    const axes = new THREE.AxesHelper(this.frustumDepth * 1.5);
    this.cameraObjects = [this.frustumLines, path, this.highlight, axes];
    for (const object of this.cameraObjects) this.scene.add(object);
    const row = this.highlighted;
    this.highlighted = -1;
    if (row >= 0) this.setFrame(row);
  }

  // Frustums drawn: the segments in the frustum geometry, 8 per camera.
  drawnFrustums() {
    return this.frustumLines.geometry.getAttribute("position").count / 16;
  }

  setPoints(buffer) {
    const view = new DataView(buffer);
    const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
    if (magic !== "SVPC") return;
    const count = view.getUint32(4, true);
    if (!count) { this.updateLegend(); return; }
    const raw = new Float32Array(buffer.slice(8, 8 + count * 12));
    const positions = new Float32Array(count * 3);
    for (let i = 0; i < count; i++) {
      positions[3 * i] = raw[3 * i]; positions[3 * i + 1] = -raw[3 * i + 1]; positions[3 * i + 2] = -raw[3 * i + 2];
    }
    const colours = new Uint8Array(buffer, 8 + count * 12, count * 3);
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(new Uint8Array(colours), 3, true));
    this.cloud = new THREE.Points(geometry, new THREE.PointsMaterial({ size: 2, sizeAttenuation: false, vertexColors: true }));
    this.scene.add(this.cloud);
    this.points = count;
    // Frame the points too (the path of a panning camera is a dot, its scene is not), but not the few far ones.
    this.bounds.union(robustBox(positions, count));
    this.size = Math.max(this.bounds.getSize(new THREE.Vector3()).length(), this.size);
    if (this.frustumDepth < this.size * SCENE_SHARE) {
      this.frustumDepth = this.size * SCENE_SHARE;
      this.buildCameras();
    }
    this.fit();
    this.updateLegend();
  }

  updateLegend() {
    this.legend.textContent = `${this.frustums} cameras (blue = first, red = last), ${this.points} points` +
      (this.highlighted >= 0 ? `, frame row ${this.highlighted} in white` : "") + " - drag to turn, wheel to zoom";
  }

  setFrame(row) {
    if (row === this.highlighted || row < 0 || row >= this.poses.length) return;
    this.highlighted = row;
    const attribute = this.highlight.geometry.getAttribute("position");
    this.frustumSegments(this.poses[row], this.frustumDepth * HIGHLIGHT_SCALE).forEach((p, i) => attribute.setXYZ(i, p.x, p.y, p.z));
    attribute.needsUpdate = true;
    this.highlight.geometry.computeBoundingSphere();
    this.updateLegend();
    this.render();
  }

  fit() {
    this.target = this.bounds.getCenter(new THREE.Vector3());
    this.distance = this.size * 1.4;
    // Start above and behind the first camera, looking the way it looks.
    this.theta = 0; this.phi = 1.2;
    this.place();
  }

  place() {
    const s = Math.sin(this.phi);
    this.camera.position.set(
      this.target.x + this.distance * s * Math.sin(this.theta),
      this.target.y + this.distance * Math.cos(this.phi),
      this.target.z + this.distance * s * Math.cos(this.theta));
    this.camera.near = this.distance / 1000; this.camera.far = this.distance * 100;
    this.camera.lookAt(this.target);
    this.camera.updateProjectionMatrix();
    this.render();
  }

  bindControls() {
    const canvas = this.renderer.domElement;
    let last = null;
    canvas.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointerup", () => { last = null; });
    canvas.addEventListener("pointermove", (e) => {
      if (!last) return;
      this.theta -= (e.clientX - last[0]) * 0.008;
      this.phi = Math.min(Math.PI - 0.05, Math.max(0.05, this.phi - (e.clientY - last[1]) * 0.008));
      last = [e.clientX, e.clientY];
      this.place();
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.distance *= Math.exp(Math.sign(e.deltaY) * 0.12);
      this.place();
    }, { passive: false });
  }

  onResize() {
    const w = this.container.clientWidth || 400, h = this.container.clientHeight || 300;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  render() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.renderer.render(this.scene, this.camera);
      this.frames += 1;
    });
  }

  dispose() {
    this.resize.disconnect();
    if (this.pending) cancelAnimationFrame(this.pending);
    this.renderer.dispose();
  }
}
