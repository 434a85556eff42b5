"""WhiteNoise, kept off the path of every request that is not a static file.

WhiteNoise's middleware is synchronous. Under ASGI, Django runs a synchronous middleware in
a worker thread and hops back to the event loop for the asynchronous ones below it, so with
WhiteNoise near the top of MIDDLEWARE every API call and page paid two extra thread
crossings before its view ran. (A profile of the agents' progress reports puts most of their
cost in the view's own database work, not in these crossings; bench/scenarios/agentapi.py
measures the whole path.) This subclass is asynchronous: a request under STATIC_URL is looked up
and served by WhiteNoise (in a thread, since it touches the file system); every other request
goes straight on, in the event loop. Under WSGI and the test client it behaves as WhiteNoise.
"""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if request.path_info.startswith(self.static_prefix):
            response = await sync_to_async(self._serve_if_found, thread_sensitive=False)(request)
            if response is not None:
                return response
        return await self.get_response(request)

    def _serve_if_found(self, request):
        path = request.path_info
        static_file = self.find_file(path) if self.autorefresh else self.files.get(path)
        return None if static_file is None else self.serve(static_file, request)
