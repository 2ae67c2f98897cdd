"""i2vkit's front door in a checkout: `invoke <task>` runs the same tasks as the `i2vkit`
console script (i2vkit/cli), plus the developer's test, check and fix. It only assembles."""

from i2vkit.cli import dev, namespace

ns = namespace()
for task in (dev.test, dev.check, dev.fix):
    ns.add_task(task)
