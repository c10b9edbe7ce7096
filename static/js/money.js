// US dollars as the server's money filter writes them (accounts/templatetags/money.py): $4.20,
// $1,234.50; below a cent two significant digits ($0.0031), so a small spend does not read as nothing.
const DOLLARS = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export function money(value) {
  if (value === null || value === undefined || value === "") return null;
  const amount = Number(value);
  const sign = amount < 0 ? "-" : "";
  const size = Math.abs(amount);
  if (size === 0 || size >= 0.01) return `${sign}$${DOLLARS.format(size)}`;
  if (size < 0.000001) return `${sign}<$0.000001`;
  return `${sign}$${size.toPrecision(2).replace(/0+$/, "")}`;
}
