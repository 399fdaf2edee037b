// The parameter form, generated from /settings' input_params JSON schema, so that a new model
// parameter or a changed range shows up on the pages without touching them.
//
// Emits "change" (CustomEvent, detail {name, values}) with the full set of valid values whenever
// one of them changes; typing is debounced so that a prompt is sent once the person pauses.

import { icon } from "/static/icons.js";
import { el } from "/static/ui.js";

const TYPING_DELAY_MS = 450;
const SLIDING_DELAY_MS = 120;
const MAIN_FIELDS = ["prompt", "prompt_list", "prompt_transition_frames", "negative_prompt", "seed"];
// The prompt blend is shown as a second prompt and a slider; the server takes [[prompt, weight], ...]
const BLEND = "prompt_list";
const NO_BLEND = { second: "", weight: 0.5 };

export class ParamsForm extends EventTarget {
  constructor(container, schema, storageKey) {
    super();
    this.container = container;
    this.schema = schema;
    this.storageKey = storageKey;
    this.fields = new Map();
    this.timers = new Map();
    this.current = {};
    // Enter in a field submits the form; nothing is submitted anywhere (and the Content-Security-Policy
    // allows no inline handler attribute to say so)
    container.addEventListener("submit", (event) => event.preventDefault());
    this.build();
  }

  /** Every parameter's last valid value, in the shape the server accepts. */
  values() {
    const values = { ...this.current };
    if (this.fields.has(BLEND)) values[BLEND] = blendList(values.prompt, values[BLEND]);
    return values;
  }

  build() {
    const props = this.schema.properties || {};
    const saved = this.load();
    const main = el("div", { class: "param-group" });
    const more = el("div", { class: "param-group" });
    const mainNodes = [];
    for (const [name, spec] of Object.entries(props)) {
      if (!spec["x-triton-input"]) continue; // echoed for other clients (width, height), not a model input
      const field = makeField(name, spec);
      if (!field) continue;
      this.fields.set(name, field);
      const initial = saved[name] !== undefined && field.check(saved[name]).ok ? saved[name] : spec.default;
      if (initial !== undefined) {
        field.write(initial);
        this.current[name] = initial;
      }
      field.onInput((immediate) => this.edited(name, immediate));
      if (MAIN_FIELDS.includes(name)) mainNodes.push([MAIN_FIELDS.indexOf(name), field.node]);
      else more.append(field.node);
    }
    mainNodes.sort((a, b) => a[0] - b[0]).forEach(([, node]) => main.append(node));
    const reset = el("button", { type: "button", class: "btn btn-ghost btn-small", text: "Reset to defaults" });
    reset.addEventListener("click", () => this.reset());
    this.container.replaceChildren(main);
    if (more.childElementCount) {
      const details = el(
        "details",
        { class: "param-more", open: window.matchMedia("(min-width: 1100px)").matches },
        el("summary", { text: "Fine-tuning" }),
        more,
      );
      this.container.append(details);
    }
    this.container.append(el("div", { class: "param-footer" }, reset));
  }

  edited(name, immediate) {
    clearTimeout(this.timers.get(name));
    const field = this.fields.get(name);
    const apply = () => {
      this.timers.delete(name);
      const result = field.check(field.read());
      field.showError(result.ok ? "" : result.error);
      if (!result.ok || sameValue(result.value, this.current[name])) return;
      this.current[name] = result.value;
      this.save();
      this.dispatchEvent(new CustomEvent("change", { detail: { name, values: this.values() } }));
    };
    if (immediate) apply();
    else this.timers.set(name, setTimeout(apply, field.delay));
  }

  reset() {
    const props = this.schema.properties || {};
    let changed = false;
    for (const [name, field] of this.fields) {
      const value = props[name].default;
      if (value === undefined) continue;
      field.write(value);
      field.showError("");
      if (!sameValue(value, this.current[name])) changed = true;
      this.current[name] = value;
    }
    this.save();
    if (changed) this.dispatchEvent(new CustomEvent("change", { detail: { name: null, values: this.values() } }));
  }

  load() {
    try {
      return JSON.parse(localStorage.getItem(this.storageKey) || "{}") || {};
    } catch {
      return {};
    }
  }

  save() {
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(this.current));
    } catch {
      // private mode or full storage: the form still works, it just forgets
    }
  }
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A control for one schema property, or null for a type the form does not know. */
function makeField(name, spec) {
  if (name === BLEND) return blendField(name, spec);
  if (spec.enum) return enumField(name, spec);
  switch (spec.type) {
    case "string":
      return textField(name, spec);
    case "integer":
      return name === "seed" ? seedField(name, spec) : numberField(name, spec, true);
    case "number":
      return numberField(name, spec, false);
    case "boolean":
      return booleanField(name, spec);
    case "array":
      return spec.items && ["integer", "number"].includes(spec.items.type) ? listField(name, spec) : null;
    default:
      return null;
  }
}

function frame(name, spec, control, extra) {
  const id = `param-${name}`;
  control.id = control.id || id;
  const error = el("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const help = spec.description ? el("p", { class: "field-help", id: `${id}-help`, text: spec.description }) : null;
  control.setAttribute("aria-describedby", [help && help.id, error.id].filter(Boolean).join(" "));
  const label = el("label", { for: control.id, text: spec.title || name });
  const header = el("div", { class: "field-head" }, label, extra?.head);
  const node = el("div", { class: `field field-${spec.type}`, "data-param": name }, header, extra?.body || control, help, error);
  return {
    node,
    showError(text) {
      error.textContent = text;
      control.toggleAttribute("aria-invalid", Boolean(text));
    },
  };
}

function textField(name, spec) {
  const long = name === "prompt";
  const control = el("textarea", {
    name,
    rows: long ? 3 : 2,
    spellcheck: "true",
    maxLength: spec.maxLength,
    placeholder: spec.default || "",
  });
  const counter = el("span", { class: "field-count" });
  const updateCount = () => {
    counter.textContent = spec["x-max-tokens"] ? `≈${approxTokens(control.value)} / ${spec["x-max-tokens"]} tokens` : "";
  };
  control.addEventListener("input", updateCount);
  const base = frame(name, spec, control, { head: counter });
  return {
    ...base,
    delay: TYPING_DELAY_MS,
    read: () => control.value,
    write: (value) => {
      control.value = value;
      updateCount();
    },
    check: (value) => (typeof value === "string" ? { ok: true, value } : { ok: false, error: "Text expected." }),
    onInput(callback) {
      control.addEventListener("input", () => callback(false));
      control.addEventListener("change", () => callback(true));
      control.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) callback(true);
      });
    },
  };
}

/** CLIP's tokenizer is not available here; about one token per word piece is close enough to warn. */
function approxTokens(text) {
  const pieces = text.toLowerCase().match(/[a-z]+|[0-9]|[^\sa-z0-9]/g) || [];
  return pieces.reduce((sum, piece) => sum + Math.max(1, Math.ceil(piece.length / 6)), 0);
}

function rangeCheck(spec, integer) {
  return (raw) => {
    const value = typeof raw === "number" ? raw : Number(String(raw).trim());
    if (String(raw).trim() === "" || !Number.isFinite(value)) return { ok: false, error: "Enter a number." };
    if (integer && !Number.isInteger(value)) return { ok: false, error: "Enter a whole number." };
    if (spec.minimum !== undefined && value < spec.minimum) return { ok: false, error: `At least ${spec.minimum}.` };
    if (spec.maximum !== undefined && value > spec.maximum) return { ok: false, error: `At most ${spec.maximum}.` };
    return { ok: true, value };
  };
}

function numberField(name, spec, integer) {
  const bounded = spec.minimum !== undefined && spec.maximum !== undefined;
  const step = integer ? 1 : niceStep(spec);
  const number = el("input", {
    type: "number",
    name,
    min: spec.minimum,
    max: spec.maximum,
    step,
    inputmode: integer ? "numeric" : "decimal",
    class: "number-input",
  });
  if (!bounded) {
    const base = frame(name, spec, number);
    return simpleNumber(base, number, rangeCheck(spec, integer));
  }
  const slider = el("input", {
    type: "range",
    min: spec.minimum,
    max: spec.maximum,
    step,
    "aria-label": spec.title || name,
    tabindex: "-1",
  });
  const body = el("div", { class: "slider-row" }, slider, number);
  const base = frame(name, spec, number, { body });
  return {
    ...base,
    delay: SLIDING_DELAY_MS,
    read: () => number.value,
    write: (value) => {
      number.value = value;
      slider.value = value;
    },
    check: rangeCheck(spec, integer),
    onInput(callback) {
      slider.addEventListener("input", () => {
        number.value = slider.value;
        callback(false);
      });
      slider.addEventListener("change", () => callback(true));
      number.addEventListener("input", () => {
        slider.value = number.value;
        callback(false);
      });
      number.addEventListener("change", () => callback(true));
    },
  };
}

function simpleNumber(base, input, check) {
  return {
    ...base,
    delay: TYPING_DELAY_MS,
    read: () => input.value,
    write: (value) => {
      input.value = value;
    },
    check,
    onInput(callback) {
      input.addEventListener("input", () => callback(false));
      input.addEventListener("change", () => callback(true));
    },
  };
}

function seedField(name, spec) {
  const input = el("input", {
    type: "number",
    name,
    min: spec.minimum,
    max: spec.maximum,
    step: 1,
    inputmode: "numeric",
    class: "number-input",
  });
  const dice = el("button", {
    type: "button",
    class: "btn btn-ghost btn-small",
    title: "Pick a random seed",
    "aria-label": "Random seed",
    "data-action": "random-seed",
  }, icon("dice"), "Random");
  const body = el("div", { class: "seed-row" }, input, dice);
  const base = frame(name, spec, input, { body });
  const field = simpleNumber(base, input, rangeCheck(spec, true));
  const subscribe = field.onInput;
  field.onInput = (callback) => {
    subscribe(callback);
    dice.addEventListener("click", () => {
      const low = spec.minimum ?? 0;
      const high = Math.min(spec.maximum ?? 2 ** 31 - 1, 2 ** 31 - 1);
      input.value = low + Math.floor(Math.random() * (high - low + 1));
      callback(true);
    });
  };
  return field;
}

function listField(name, spec) {
  const items = spec.items;
  const input = el("input", {
    type: "text",
    name,
    inputmode: "numeric",
    autocomplete: "off",
    placeholder: (spec.default || []).join(", "),
  });
  const base = frame(name, spec, input);
  const check = (raw) => {
    const parts = Array.isArray(raw) ? raw : String(raw).split(/[\s,;]+/).filter(Boolean);
    const values = parts.map(Number);
    if (values.some((v) => !Number.isFinite(v))) return { ok: false, error: "Numbers separated by commas." };
    if (items.type === "integer" && values.some((v) => !Number.isInteger(v))) {
      return { ok: false, error: "Whole numbers only." };
    }
    if (spec.minItems !== undefined && values.length < spec.minItems) {
      return { ok: false, error: `At least ${spec.minItems} value${spec.minItems > 1 ? "s" : ""}.` };
    }
    if (spec.maxItems !== undefined && values.length > spec.maxItems) {
      return { ok: false, error: `At most ${spec.maxItems} values.` };
    }
    const low = items.minimum;
    const high = items.maximum;
    if (values.some((v) => (low !== undefined && v < low) || (high !== undefined && v > high))) {
      return { ok: false, error: `Each value between ${low ?? "−∞"} and ${high ?? "∞"}.` };
    }
    if (/increasing/i.test(spec.description || "") && values.some((v, i) => i > 0 && v <= values[i - 1])) {
      return { ok: false, error: "Each value larger than the one before." };
    }
    return { ok: true, value: values };
  };
  const field = simpleNumber(base, input, check);
  field.write = (value) => {
    input.value = Array.isArray(value) ? value.join(", ") : value;
  };
  return field;
}

/** [[prompt, 1 - w], [second, w]] from the form's blend state; [] (no blend) without a second prompt. */
function blendList(prompt, state) {
  if (!state || Array.isArray(state) || !state.second.trim()) return [];
  const weight = Math.round(state.weight * 100) / 100;
  return [
    [prompt ?? "", Math.round((1 - weight) * 100) / 100],
    [state.second, weight],
  ];
}

/** The form's blend state from a saved value or the schema's default (an empty list: no blend). */
function blendState(value) {
  if (Array.isArray(value)) {
    return value.length === 2 ? { second: String(value[1][0]), weight: Number(value[1][1]) } : { ...NO_BLEND };
  }
  return value && typeof value.second === "string" && Number.isFinite(value.weight) ? value : { ...NO_BLEND };
}

/** A second prompt and how far the picture moves towards it: 0 the first prompt alone, 1 the second alone. */
function blendField(name, spec) {
  const text = spec.items?.prefixItems?.[0] || {};
  const control = el("textarea", {
    name: `${name}-second`,
    rows: 2,
    spellcheck: "true",
    maxLength: text.maxLength,
    placeholder: "a second prompt to blend with the first",
  });
  const slider = el("input", {
    type: "range",
    id: `param-${name}-weight`,
    name: `${name}-weight`,
    min: 0,
    max: 1,
    step: 0.05,
    "aria-label": "Blend towards the second prompt",
  });
  const readout = el("output", { class: "blend-readout", for: slider.id });
  const showWeight = () => {
    const second = Math.round(Number(slider.value) * 100);
    const blending = Boolean(control.value.trim());
    readout.textContent = blending ? `${100 - second} % first · ${second} % second` : "No blend: the first prompt alone";
    slider.disabled = !blending;
  };
  const body = el(
    "div",
    { class: "blend" },
    control,
    el(
      "div",
      { class: "blend-row" },
      el("span", { class: "blend-end", text: "First" }),
      slider,
      el("span", { class: "blend-end", text: "Second" }),
    ),
    readout,
  );
  const help = "Slide towards the second prompt: First paints the first prompt alone, Second the second alone.";
  const base = frame(name, { ...spec, title: "Blend with a second prompt", description: help }, control, { body });
  const limit = text.maxLength;
  let delay = TYPING_DELAY_MS; // typing waits for a pause (each new prompt is an encoder call); sliding less
  return {
    ...base,
    get delay() {
      return delay;
    },
    read: () => ({ second: control.value, weight: Number(slider.value) }),
    write: (value) => {
      const state = blendState(value);
      control.value = state.second;
      slider.value = state.weight;
      showWeight();
    },
    check: (value) => {
      const state = blendState(value);
      if (limit !== undefined && state.second.length > limit) return { ok: false, error: `At most ${limit} characters.` };
      return { ok: true, value: state };
    },
    onInput(callback) {
      control.addEventListener("input", () => {
        delay = TYPING_DELAY_MS;
        showWeight();
        callback(false);
      });
      control.addEventListener("change", () => callback(true));
      slider.addEventListener("input", () => {
        delay = SLIDING_DELAY_MS;
        showWeight();
        callback(false);
      });
      slider.addEventListener("change", () => callback(true));
    },
  };
}

function booleanField(name, spec) {
  const input = el("input", { type: "checkbox", name });
  const base = frame(name, spec, input);
  return {
    ...base,
    delay: 0,
    read: () => input.checked,
    write: (value) => {
      input.checked = Boolean(value);
    },
    check: (value) => ({ ok: true, value: Boolean(value) }),
    onInput(callback) {
      input.addEventListener("change", () => callback(true));
    },
  };
}

function enumField(name, spec) {
  const select = el("select", { name }, ...spec.enum.map((v) => el("option", { value: JSON.stringify(v), text: String(v) })));
  const base = frame(name, spec, select);
  return {
    ...base,
    delay: 0,
    read: () => JSON.parse(select.value),
    write: (value) => {
      select.value = JSON.stringify(value);
    },
    check: (value) => (spec.enum.some((v) => sameValue(v, value)) ? { ok: true, value } : { ok: false, error: "Pick one." }),
    onInput(callback) {
      select.addEventListener("change", () => callback(true));
    },
  };
}

/** A slider step of about a hundredth of the range, rounded to 1, 2 or 5 times a power of ten. */
function niceStep(spec) {
  if (spec.multipleOf) return spec.multipleOf;
  const span = (spec.maximum ?? 1) - (spec.minimum ?? 0);
  const raw = span / 100;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled < 1.5 ? 1 : scaled < 3.5 ? 2 : 5) * power;
}
