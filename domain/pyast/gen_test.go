package pyast

import (
	"fmt"
	"strings"
)

// generateAgentsFile writes a deterministic Agents SDK workflow of about
// lines lines: blocks of a pydantic context class, two function tools,
// a helper function and three agents (two specialists and a triage agent
// that hands off to both and to the previous block's triage agent).
func generateAgentsFile(lines int) string {
	var b strings.Builder
	b.WriteString(`"""Generated benchmark workflow: many agents, tools and helpers."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agents import Agent, ModelSettings, Runner, WebSearchTool, function_tool, handoff
from pydantic import BaseModel

`)
	prevTriage := ""
	for i := 0; strings.Count(b.String(), "\n") < lines-20; i++ {
		fmt.Fprintf(&b, `
class Order%[1]d(BaseModel):
    """An order handled by the agents of block %[1]d."""

    order_id: str
    amount: float = 0.0
    items: list[str] = []


@function_tool
def lookup_order_%[1]d(order_id: str) -> str:
    """Look up order %[1]d by id; returns a short status line."""
    status = {"open": "is open", "closed": "was closed"}.get(order_id[:4], "is unknown")
    return f"Order {order_id} {status} (block %[1]d)"


@function_tool
async def refund_%[1]d(order_id: str, amount: float) -> str:
    if amount <= 0:
        raise ValueError("amount must be positive")
    await asyncio.sleep(0)
    return f"refunded {amount:.2f} on {order_id}"


def score_%[1]d(text: str, *, weight: float = 1.0) -> float:
    words = [w for w in text.split() if w.isalpha()]
    total = 0.0
    for n, word in enumerate(words):
        if n %% 2 == 0:
            total += len(word) * weight
        else:
            total -= len(word) / (weight + 1)
    return total


billing_agent_%[1]d = Agent(
    name="Billing agent %[1]d",
    instructions=(
        "You handle billing questions. "
        "Never promise a refund above 100 EUR without approval."
    ),
    tools=[lookup_order_%[1]d, refund_%[1]d],
    model_settings=ModelSettings(temperature=0.2, max_tokens=800),
)

support_agent_%[1]d = Agent(
    name='Support agent %[1]d',
    instructions="""You answer support questions.
Use the web search tool for product facts; say Agent( is not a tool.""",
    tools=[WebSearchTool(), lookup_order_%[1]d],
)

triage_agent_%[1]d: Agent = Agent(
    name="Triage agent %[1]d",
    instructions="Route the user to billing or support.",
    handoffs=[billing_agent_%[1]d, handoff(support_agent_%[1]d)%[2]s],
)
`, i, prevTriage)
		prevTriage = fmt.Sprintf(", triage_agent_%d", i)
	}
	b.WriteString(`

async def main() -> None:
    result = await Runner.run(triage_agent_0, input="Where is my order?")
    print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())
`)
	return b.String()
}
