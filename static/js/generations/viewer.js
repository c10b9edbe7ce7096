// The 3D viewer: PLY (with vertex colours) or GLB, fitted to the view, turned with the mouse.
import * as THREE from "../../vendor/three/build/three.module.js";
import { OrbitControls } from "../../vendor/three/examples/jsm/controls/OrbitControls.js";
import { GLTFLoader } from "../../vendor/three/examples/jsm/loaders/GLTFLoader.js";
import { PLYLoader } from "../../vendor/three/examples/jsm/loaders/PLYLoader.js";

const BACKGROUND = 0xf1f1f7;

// A failure told to the user as is; any other (a parser's, the network's) gets a plain sentence.
class LoadError extends Error {}

// Fetches a model (same-origin, the owner's session cookie) and returns a ready Object3D.
export async function loadObject(src, type) {
  const response = await fetch(src, { credentials: "same-origin" });
  if (!response.ok) {
    const status = response.status;
    throw new LoadError(`The object could not be loaded (error ${status}). Reload the page to try again.`);
  }
  const buffer = await response.arrayBuffer();
  return type === "glb" ? parseGlb(buffer) : parsePly(buffer);
}

function parsePly(buffer) {
  const geometry = new PLYLoader().parse(buffer);
  const colored = geometry.hasAttribute("color");
  if (!geometry.index) {
    // No faces: a point cloud, as some 3D models return.
    const material = new THREE.PointsMaterial({ vertexColors: colored, sizeAttenuation: true });
    return new THREE.Points(geometry, material);
  }
  if (!geometry.hasAttribute("normal")) geometry.computeVertexNormals();
  const material = new THREE.MeshStandardMaterial({
    vertexColors: colored,
    color: colored ? 0xffffff : 0xb8b8c8,
    roughness: 0.65,
    metalness: 0.05,
    side: THREE.DoubleSide,
  });
  return new THREE.Mesh(geometry, material);
}

function parseGlb(buffer) {
  return new Promise((resolve, reject) => {
    new GLTFLoader().parse(buffer, "", (gltf) => resolve(gltf.scene), reject);
  });
}

function makeScene(object) {
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(BACKGROUND);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8d8d99, 1.6));
  // Centred on the origin, so orbiting turns the object about its middle.
  const box = new THREE.Box3().setFromObject(object);
  const center = box.getCenter(new THREE.Vector3());
  object.position.sub(center);
  scene.add(object);
  const radius = box.getBoundingSphere(new THREE.Sphere()).radius || 1;
  if (object.isPoints) object.material.size = radius / 120; // points sized to the object
  return { scene, radius };
}

function fitCamera(camera, radius) {
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2));
  camera.position.set(distance * 0.6, distance * 0.45, distance * 0.75).setLength(distance * 1.1);
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.updateProjectionMatrix();
  camera.lookAt(0, 0, 0);
}

function headLight(camera) {
  // A light that moves with the camera: whichever side is turned to the viewer is lit.
  const light = new THREE.DirectionalLight(0xffffff, 1.8);
  light.position.set(1, 1.5, 2);
  camera.add(light);
}

// Mounts an interactive viewer in `container`; sets data-ready="true" once the model has drawn.
export async function mountViewer(container, src, type) {
  container.dataset.ready = "false";
  const message = container.querySelector('[data-role="viewer-message"]');
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true });
  } catch {
    fail(container, message, "Your browser cannot show 3D here. Download the file instead.");
    return null;
  }
  let object;
  try {
    object = await loadObject(src, type);
  } catch (error) {
    renderer.dispose();
    const text = error instanceof LoadError ? error.message : "The object could not be shown here. Download it instead.";
    fail(container, message, text);
    return null;
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  const camera = new THREE.PerspectiveCamera(40, 1, 0.01, 1000);
  const { scene, radius } = makeScene(object);
  scene.add(camera);
  headLight(camera);
  fitCamera(camera, radius);

  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0, 0);
  controls.enableDamping = false; // render on demand only: no loop burning the battery
  const render = () => renderer.render(scene, camera);
  controls.addEventListener("change", render);

  const resize = () => {
    const width = container.clientWidth || 300;
    const height = container.clientHeight || 300;
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    render();
  };
  renderer.domElement.className = "viewer-canvas";
  renderer.domElement.setAttribute("aria-label", "3D view of the object; drag to turn it");
  container.replaceChildren(renderer.domElement);
  const observer = new ResizeObserver(resize);
  observer.observe(container);
  resize();
  container.dataset.ready = "true";

  return () => {
    observer.disconnect();
    controls.dispose();
    renderer.dispose();
    disposeObject(object);
  };
}

function fail(container, message, text) {
  container.dataset.ready = "error";
  if (message) message.textContent = text;
}

function disposeObject(object) {
  object.traverse((node) => {
    node.geometry?.dispose();
    const materials = Array.isArray(node.material) ? node.material : [node.material];
    materials.forEach((material) => material?.dispose());
  });
}

// One shared renderer paints every gallery thumbnail: browsers allow only a few WebGL contexts.
let thumbnailRenderer = null;

// The gallery's boxes are 4:3, so the thumbnails are too.
export async function renderThumbnail(src, type, width = 400, height = 300) {
  const object = await loadObject(src, type);
  thumbnailRenderer ??= new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  thumbnailRenderer.setSize(width, height, false);
  thumbnailRenderer.outputColorSpace = THREE.SRGBColorSpace;
  const camera = new THREE.PerspectiveCamera(40, width / height, 0.01, 1000);
  const { scene, radius } = makeScene(object);
  scene.add(camera);
  headLight(camera);
  fitCamera(camera, radius);
  thumbnailRenderer.render(scene, camera);
  const url = thumbnailRenderer.domElement.toDataURL("image/png");
  disposeObject(object);
  return url;
}
