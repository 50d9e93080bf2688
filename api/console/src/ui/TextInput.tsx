interface Props {
  id: string;
  value: string;
  onValue: (value: string) => void;
  /** A datetime-local input (to the second) instead of free text. */
  datetime?: boolean;
  describedBy?: string | undefined;
}

export function TextInput({ id, value, onValue, datetime, describedBy }: Props) {
  const common = {
    id,
    value,
    onInput: (e: { currentTarget: HTMLInputElement }) => onValue(e.currentTarget.value),
    "aria-describedby": describedBy,
    autocomplete: "off",
  };
  return datetime ? <input {...common} type="datetime-local" step={1} /> : <input {...common} type="text" spellcheck={false} />;
}
