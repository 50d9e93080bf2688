import { TextInput } from "../ui/TextInput";
import type { ScopeForm } from "./scope";

interface Props {
  prefix: string;
  value: ScopeForm;
  onChange: (value: ScopeForm) => void;
  allowFilter: boolean;
}

const FIELDS: { name: keyof ScopeForm; label: string; datetime: boolean; hint?: string }[] = [
  { name: "from", label: "From", datetime: true, hint: "your local time" },
  { name: "to", label: "To (before)", datetime: true, hint: "your local time" },
  { name: "actions", label: "Actions or namespaces", datetime: false, hint: "comma-separated; billing. matches every billing action" },
  { name: "categories", label: "Categories", datetime: false, hint: "comma-separated" },
  { name: "actor", label: "Actor id", datetime: false },
  { name: "resource_type", label: "Resource type", datetime: false },
  { name: "resource_id", label: "Resource id", datetime: false },
];

export function ScopeFields({ prefix, value, onChange, allowFilter }: Props) {
  const set = (name: keyof ScopeForm, text: string) => onChange({ ...value, [name]: text });
  return (
    <fieldset class="scope">
      <legend>Scope (empty fields do not filter)</legend>
      <div class="filter-grid">
        {FIELDS.map((field) => {
          const id = `${prefix}-${field.name.replace(/_/g, "-")}`;
          return (
            <div class="field" key={id}>
              <label for={id}>{field.label}</label>
              <TextInput
                id={id}
                datetime={field.datetime}
                value={value[field.name]}
                onValue={(text) => set(field.name, text)}
                describedBy={field.hint ? `${id}-hint` : undefined}
              />
              {field.hint && (
                <span class="hint" id={`${id}-hint`}>
                  {field.hint}
                </span>
              )}
            </div>
          );
        })}
      </div>
      {allowFilter && (
        <div class="field">
          <label for={`${prefix}-filter`}>SQL filter (optional)</label>
          <textarea
            id={`${prefix}-filter`}
            rows={2}
            class="mono"
            value={value.filter}
            onInput={(e) => set("filter", e.currentTarget.value)}
            aria-describedby={`${prefix}-filter-hint`}
            spellcheck={false}
          />
          <span class="hint" id={`${prefix}-filter-hint`}>
            A boolean expression over the events view, as in the workbench, such as outcome = 'DENIED'
          </span>
        </div>
      )}
    </fieldset>
  );
}
