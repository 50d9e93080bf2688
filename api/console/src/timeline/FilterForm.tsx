import { useEffect, useState } from "preact/hooks";

import { localToRfc3339, rfc3339ToLocal } from "../ui/format";
import { TextInput } from "../ui/TextInput";
import { FILTER_FIELDS, type Filters } from "./filters";

interface Props {
  filters: Filters;
  onApply: (filters: Filters) => void;
}

/** Form values are what the inputs hold: datetime-local values in local time for from/to. */
function toForm(filters: Filters): Filters {
  const form: Filters = {};
  for (const field of FILTER_FIELDS) {
    const value = filters[field.name] ?? "";
    form[field.name] = field.kind === "datetime" ? rfc3339ToLocal(value) : value;
  }
  return form;
}

export function FilterForm({ filters, onApply }: Props) {
  const [form, setForm] = useState<Filters>(() => toForm(filters));
  const [open, setOpen] = useState(false);
  useEffect(() => setForm(toForm(filters)), [filters]);

  const submit = (event: Event) => {
    event.preventDefault();
    const applied: Filters = {};
    for (const field of FILTER_FIELDS) {
      const raw = (form[field.name] ?? "").trim();
      const value = field.kind === "datetime" ? localToRfc3339(raw) : raw;
      if (value) applied[field.name] = value;
    }
    // Filters that have no field (causation_id from an event page) are dropped on purpose: the
    // form shows everything that filters after it is applied.
    onApply(applied);
  };

  const set = (name: string, value: string) => setForm((current) => ({ ...current, [name]: value }));
  const active = Object.keys(filters).length;

  return (
    <section class="card filters-card" aria-labelledby="filters-title">
      <div class="filters-head">
        <h2 id="filters-title">Filters</h2>
        <button
          type="button"
          id="toggle-filters"
          class="small filters-toggle"
          aria-expanded={open}
          aria-controls="filters"
          onClick={() => setOpen(!open)}
        >
          {open ? "Hide filters" : `Show filters${active ? ` (${active} active)` : ""}`}
        </button>
      </div>
      <form id="filters" class={`filters ${open ? "open" : ""}`} onSubmit={submit}>
        <div class="filter-grid">
          {FILTER_FIELDS.map((field) => (
            <div class="field" key={field.id}>
              <label for={field.id}>{field.label}</label>
              {field.kind === "select" ? (
                <select id={field.id} value={form[field.name] ?? ""} onChange={(e) => set(field.name, e.currentTarget.value)}>
                  {field.options?.map((option) => (
                    <option key={option.value} value={option.value}>
                      {option.label}
                    </option>
                  ))}
                </select>
              ) : (
                <TextInput
                  id={field.id}
                  datetime={field.kind === "datetime"}
                  value={form[field.name] ?? ""}
                  onValue={(value) => set(field.name, value)}
                  describedBy={field.hint ? `${field.id}-hint` : undefined}
                />
              )}
              {field.hint && (
                <span id={`${field.id}-hint`} class="hint">
                  {field.hint}
                </span>
              )}
            </div>
          ))}
        </div>
        <div class="actions">
          <button id="apply-filters" type="submit" class="primary">
            Apply filters
          </button>
          <button type="button" id="clear-filters" onClick={() => onApply({})}>
            Clear
          </button>
        </div>
      </form>
    </section>
  );
}
