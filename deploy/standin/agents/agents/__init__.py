"""STAND-IN for the OpenAI Agents SDK (openai-agents), built by
deploy/standin/pyindex.sh where PyPI is unreachable, so that the image builds
and a project's workflow imports. It defines the names workflows and tests
use, with the SDK's constructor arguments kept as attributes; it calls no
model. Never ship an image built with it."""

STANDIN = True


class ModelSettings:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class Agent:
    def __init__(self, name, instructions=None, handoffs=(), tools=(), model=None,
                 model_settings=None, output_type=None, **kwargs):
        self.name = name
        self.instructions = instructions
        self.handoffs = list(handoffs)
        self.tools = list(tools)
        self.model = model
        self.model_settings = model_settings
        self.output_type = output_type
        self.__dict__.update(kwargs)

    def clone(self, **kwargs):
        a = Agent.__new__(Agent)
        a.__dict__.update(self.__dict__)
        a.__dict__.update(kwargs)
        return a


class RunResult:
    def __init__(self, final_output):
        self.final_output = final_output


class Runner:
    @staticmethod
    async def run(agent, input, **kwargs):
        raise RuntimeError("agents stand-in: no model to run " + agent.name)

    @staticmethod
    def run_sync(agent, input, **kwargs):
        raise RuntimeError("agents stand-in: no model to run " + agent.name)


def function_tool(func=None, **kwargs):
    if func is None:
        return lambda f: f
    return func


def handoff(agent, **kwargs):
    return agent


class WebSearchTool:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class FileSearchTool:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
